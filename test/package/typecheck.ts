/**
 * Type-checks the TypeScript app of ./.apps/esm, installed with the packed keepsake, in several
 * kinds of TypeScript project, with the repository's TypeScript, in one process that parses each
 * shared declaration file once. packed.test.ts runs `node --import tsx typecheck.ts <workspace>`
 * after installing the workspace; it prints the errors per project as JSON and emits the ES module
 * app to esm/build/.
 *
 * keepsake's own declaration files are checked as with skipLibCheck: false (they must be clean in a
 * strict project); other packages' are not (as with skipLibCheck: true), which keeps this fast.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import type ts from 'typescript';

/** The two ways to make session-data.ts a module that augments 'keepsake'. */
export const IMPORT_TYPE = "import type {} from 'keepsake';";
export const EXPORT_EMPTY = 'export {};';

export interface Project {
  label: string;
  /** "type" of the project's package.json. */
  type: 'module' | 'commonjs';
  compilerOptions: Record<string, unknown>;
  /** The first line of session-data.ts. */
  declaration: string;
  /** Check keepsake's declaration files too (false: only the app's files, as skipLibCheck). */
  libCheck: boolean;
}

export const projects: Project[] = [
  {
    label: 'an ES module project, module nodenext (the app that runs)',
    type: 'module',
    compilerOptions: { module: 'nodenext', verbatimModuleSyntax: true, outDir: 'build' },
    declaration: IMPORT_TYPE,
    libCheck: true,
  },
  {
    label: 'a CommonJS project, module nodenext',
    type: 'commonjs',
    compilerOptions: { module: 'nodenext' },
    declaration: IMPORT_TYPE,
    libCheck: true,
  },
  {
    label: 'a CommonJS project, module nodenext, the session shape declared after `export {}`',
    type: 'commonjs',
    compilerOptions: { module: 'nodenext' },
    declaration: EXPORT_EMPTY,
    libCheck: true,
  },
  {
    // TypeScript's node16 mode models a Node without require(esm): keepsake's .d.cts re-exports
    // of its ES module types are TS1479 there, which skipLibCheck (tsc --init's default) hides.
    label: 'a CommonJS project, module node16, skipLibCheck',
    type: 'commonjs',
    compilerOptions: { module: 'node16' },
    declaration: IMPORT_TYPE,
    libCheck: false,
  },
  {
    label: 'an ES module project, moduleResolution bundler',
    type: 'module',
    compilerOptions: { module: 'preserve', moduleResolution: 'bundler' },
    declaration: IMPORT_TYPE,
    libCheck: true,
  },
];

/** The project's directory in the workspace: the app itself for the first, copies for the others. */
export const projectDir = (workspace: string, index: number) =>
  index === 0 ? join(workspace, 'esm') : join(workspace, `typecheck-${index}`);

function format(typescript: typeof ts, diagnostic: ts.Diagnostic, workspace: string): string {
  const message = typescript.flattenDiagnosticMessageText(diagnostic.messageText, ' ');
  if (diagnostic.file === undefined) return `TS${diagnostic.code}: ${message}`;
  const { line, character } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start ?? 0);
  const file = diagnostic.file.fileName.replace(`${workspace}${sep}`, '');
  return `${file}(${line + 1},${character + 1}): TS${diagnostic.code}: ${message}`;
}

/** Writes the projects' files and returns the errors of each, by label; emits the first. */
export async function typeCheck(workspace: string): Promise<Record<string, string[]>> {
  // Loaded here, not at the top: packed.test.ts imports this module for the table above only.
  const { default: ts } = await import('typescript');
  const app = await readFile(join(workspace, 'esm/app.ts'), 'utf8');
  const declaration = await readFile(join(workspace, 'esm/session-data.ts'), 'utf8');
  if (!declaration.includes(IMPORT_TYPE)) {
    throw new Error(`esm/session-data.ts does not declare the session shape after ${IMPORT_TYPE}`);
  }
  const registry = ts.createDocumentRegistry();
  const results: Record<string, string[]> = {};
  for (const [index, project] of projects.entries()) {
    const dir = projectDir(workspace, index);
    if (index > 0) {
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, 'package.json'), JSON.stringify({ type: project.type }));
      await writeFile(join(dir, 'app.ts'), app);
      await writeFile(
        join(dir, 'session-data.ts'),
        declaration.replace(IMPORT_TYPE, project.declaration),
      );
    }
    const converted = ts.convertCompilerOptionsFromJson(
      {
        target: 'ES2022',
        strict: true,
        types: ['node'],
        noEmit: index > 0,
        ...project.compilerOptions,
      },
      dir,
    );
    const options = converted.options;
    const rootNames = ['app.ts', 'session-data.ts'].map((name) => join(dir, name));
    const host: ts.LanguageServiceHost = {
      getScriptFileNames: () => rootNames,
      getScriptVersion: () => '1',
      getScriptSnapshot: (name) => {
        const text = ts.sys.readFile(name);
        return text === undefined ? undefined : ts.ScriptSnapshot.fromString(text);
      },
      getCurrentDirectory: () => dir,
      getCompilationSettings: () => options,
      getDefaultLibFileName: (settings) => ts.getDefaultLibFilePath(settings),
      fileExists: ts.sys.fileExists,
      readFile: ts.sys.readFile,
      readDirectory: ts.sys.readDirectory,
      directoryExists: ts.sys.directoryExists,
      getDirectories: ts.sys.getDirectories,
      realpath: ts.sys.realpath,
    };
    const program = ts.createLanguageService(host, registry).getProgram();
    if (program === undefined) throw new Error(`no program for ${project.label}`);
    const keepsake = `${sep}node_modules${sep}keepsake${sep}`;
    const checked = program
      .getSourceFiles()
      .filter(
        (file) =>
          file.fileName.startsWith(`${dir}${sep}`) ||
          (project.libCheck && file.fileName.includes(keepsake)),
      );
    const diagnostics = [
      ...converted.errors,
      ...program.getOptionsDiagnostics(),
      ...program.getGlobalDiagnostics(),
      ...checked.flatMap((file) => [
        ...program.getSyntacticDiagnostics(file),
        ...program.getSemanticDiagnostics(file),
      ]),
    ];
    if (index === 0 && diagnostics.length === 0) {
      const write = (name: string, text: string) => {
        mkdirSync(dirname(name), { recursive: true });
        writeFileSync(name, text);
      };
      // File by file: emitting the whole program would type-check every declaration file.
      for (const name of rootNames) {
        diagnostics.push(...program.emit(program.getSourceFile(name), write).diagnostics);
      }
    }
    results[project.label] = diagnostics.map((diagnostic) => format(ts, diagnostic, workspace));
  }
  return results;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const workspace = process.argv[2];
  if (workspace === undefined) throw new Error('usage: typecheck.ts <workspace>');
  process.stdout.write(JSON.stringify(await typeCheck(workspace)));
}
