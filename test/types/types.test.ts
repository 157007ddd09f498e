/**
 * Typed session data, the documented way (`import type {} from 'keepsake'` and `declare module
 * 'keepsake' { interface SessionDataMap { … } }`, .fixtures/session-data.ts), checked against the
 * built package as an app has it installed (test/docs/project.ts), in the kinds of project apps
 * have: module nodenext as an ES module and as CommonJS, and moduleResolution bundler.
 *
 * In each: .fixtures/pass.ts compiles (declared keys typed in every adapter), .fixtures/fail.ts
 * fails on exactly the lines marked `// error` (a wrong type does not compile), and
 * .fixtures/adapters-only.ts, an app that never imports 'keepsake' itself, is typed as well.
 * The fixtures live in a dot-folder so that tsconfig.check.json (whose globs skip dot-folders)
 * never sees their SessionDataMap declaration.
 */
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { after, before, describe, it } from 'node:test';
import ts from 'typescript';
import { cachingHost } from '../docs/compiler-host.js';
import { createProject, type Project } from '../docs/project.js';

const fixtures = new URL('./.fixtures/', import.meta.url);
const DOCUMENTED = "import type {} from 'keepsake';";

interface Kind {
  label: string;
  type: 'module' | 'commonjs';
  compilerOptions: Record<string, unknown>;
}

const kinds: Kind[] = [
  { label: 'an ES module project, module nodenext', type: 'module', compilerOptions: {} },
  { label: 'a CommonJS project, module nodenext', type: 'commonjs', compilerOptions: {} },
  {
    label: 'a project with moduleResolution bundler',
    type: 'module',
    compilerOptions: { module: 'preserve', moduleResolution: 'bundler' },
  },
];

let project: Project | undefined;
let sessionData = '';
let programs = 0;

before(async () => {
  project = await createProject();
  sessionData = await readFile(new URL('session-data.ts', fixtures), 'utf8');
  assert.ok(sessionData.includes(DOCUMENTED), `session-data.ts starts with ${DOCUMENTED}`);
});
after(() => project?.remove());

/**
 * Compiles `files` (fixture names) with `declaration` as session-data.ts, in a project of `kind`;
 * answers the errors per file, as `line: TS1234 message`.
 */
async function compile(
  kind: Kind,
  files: string[],
  declaration = sessionData,
): Promise<Map<string, string[]>> {
  assert.ok(project !== undefined);
  programs += 1;
  const dir = join(project.dir, `types-${programs}`);
  await mkdir(dir);
  await writeFile(join(dir, 'package.json'), JSON.stringify({ type: kind.type }));
  await writeFile(join(dir, 'session-data.ts'), declaration);
  for (const file of files) {
    await writeFile(join(dir, file), await readFile(new URL(file, fixtures), 'utf8'));
  }
  const converted = ts.convertCompilerOptionsFromJson(
    {
      module: 'nodenext',
      target: 'es2022',
      strict: true,
      types: ['node'],
      skipLibCheck: true,
      noEmit: true,
      ...kind.compilerOptions,
    },
    dir,
  );
  assert.deepEqual(converted.errors, []);
  const host = cachingHost(converted.options, dir, (name) => name.startsWith(`${dir}${sep}`));
  const roots = ['session-data.ts', ...files].map((file) => join(dir, file));
  const program = ts.createProgram(roots, converted.options, host);
  const errors = new Map<string, string[]>();
  const global = [...program.getOptionsDiagnostics(), ...program.getGlobalDiagnostics()];
  errors.set(
    '(global)',
    global.map((diagnostic) => format(diagnostic)),
  );
  for (const root of roots) {
    const file = program.getSourceFile(root);
    const diagnostics =
      file === undefined
        ? []
        : [...program.getSyntacticDiagnostics(file), ...program.getSemanticDiagnostics(file)];
    errors.set(
      root.slice(dir.length + 1),
      diagnostics.map((diagnostic) => format(diagnostic)),
    );
  }
  return errors;
}

function format(diagnostic: ts.Diagnostic): string {
  const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, ' ');
  if (diagnostic.file === undefined || diagnostic.start === undefined) {
    return `TS${diagnostic.code} ${message}`;
  }
  const { line } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start);
  return `${line + 1}: TS${diagnostic.code} ${message}`;
}

const lineOf = (error: string) => Number(error.slice(0, error.indexOf(':')));
const dump = (errors: Map<string, string[]>) =>
  [...errors].flatMap(([file, list]) => list.map((error) => `${file}:${error}`)).join('\n');

describe('typed session data, declared the documented way', () => {
  for (const kind of kinds) {
    it(`types every adapter, and a wrong type fails, in ${kind.label}`, async () => {
      const source = await readFile(new URL('fail.ts', fixtures), 'utf8');
      const marked = source
        .split('\n')
        .flatMap((line, index) => (line.trimEnd().endsWith('// error') ? [index + 1] : []));
      assert.ok(marked.length >= 10, 'the fail fixture marks its expected errors');

      const errors = await compile(kind, ['pass.ts', 'fail.ts']);
      for (const file of ['(global)', 'session-data.ts', 'pass.ts']) {
        assert.deepEqual(errors.get(file), [], `${file} compiles:\n${dump(errors)}`);
      }
      const failed = [...new Set((errors.get('fail.ts') ?? []).map(lineOf))];
      assert.deepEqual(failed, marked, `fail.ts fails on its marked lines only:\n${dump(errors)}`);
    });

    it(`types an app that imports only an adapter, in ${kind.label}`, async () => {
      const errors = await compile(kind, ['adapters-only.ts']);
      assert.equal(dump(errors), '');
    });
  }

  it('the adapters load the root types: `export {}` instead of the import works too', async () => {
    const declaration = sessionData.replace(DOCUMENTED, 'export {};');
    const errors = await compile(kinds[0] as Kind, ['adapters-only.ts'], declaration);
    assert.equal(dump(errors), '');
  });

  it('without the import line, a bundler project loses the declaration', async () => {
    // The documented reason to keep the line: a file without imports or exports is a script, and
    // its `declare module 'keepsake'` declares a module of its own instead of extending keepsake's.
    const declaration = sessionData.replace(DOCUMENTED, '');
    const errors = await compile(kinds[2] as Kind, ['adapters-only.ts'], declaration);
    assert.notEqual(errors.get('adapters-only.ts')?.length ?? 0, 0, dump(errors));
  });
});
