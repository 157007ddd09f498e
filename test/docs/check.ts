/**
 * Type-checks documentation code blocks as files of an app project (project.ts) in one process
 * with TypeScript's compiler API: the blocks are written to the project, one folder per page, and
 * checked together in one program, so the declaration files they share are parsed and bound once.
 * A block that augments a module (`declare module`, `declare global`) would change the types of
 * every other block, so it gets a program of its own (reusing the parsed declaration files), and
 * so does a block flagged `with=<name>`: it is checked together with the block of its page named
 * <name> (`// session-data.ts` on its first line), as two files of one project.
 * A `partial` block is only parsed.
 *
 * The compiler options are those of a fresh `tsc --init` project of TypeScript 6 (module nodenext,
 * strict and its companions, moduleDetection force), with `"types": ["node"]` added as a Node
 * app's tsconfig has it, and checkJs for JavaScript blocks. A block is an ES module (the project's
 * package.json says "type": "module"), unless its name says `.cjs` or `.cts`.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, sep } from 'node:path';
import ts from 'typescript';
import type { Block } from './blocks.js';
import { cachingHost } from './compiler-host.js';

export const COMPILER_OPTIONS = {
  module: 'nodenext',
  target: 'esnext',
  types: ['node'],
  strict: true,
  noUncheckedIndexedAccess: true,
  exactOptionalPropertyTypes: true,
  verbatimModuleSyntax: true,
  isolatedModules: true,
  noUncheckedSideEffectImports: true,
  moduleDetection: 'force',
  skipLibCheck: true,
  allowJs: true,
  checkJs: true,
  noEmit: true,
};

/** `declare module '…'` or `declare global`: the block changes types outside itself. */
export const augments = (block: Block) => /\bdeclare\s+(?:module\s+['"]|global\b)/.test(block.code);

const extensionOf = (block: Block) => (block.language === 'ts' ? '.ts' : '.js');

/** The file each block is written to: its own name, else `block-<line>`, in its page's folder. */
function fileNames(dir: string, blocks: readonly Block[]): Map<Block, string> {
  const files = new Map<Block, string>();
  const taken = new Set<string>();
  for (const block of blocks) {
    const folder = join(dir, 'blocks', block.page.replace(/[^\w-]+/g, '_'));
    let file = join(folder, block.name ?? `block-${block.line}${extensionOf(block)}`);
    if (taken.has(file)) file = join(folder, `block-${block.line}-${block.name ?? ''}`);
    taken.add(file);
    files.set(block, file);
  }
  return files;
}

/** `page:line:column TS1234 message`, the line and column in the Markdown file. */
function located(block: Block, diagnostic: ts.Diagnostic): string {
  const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n  ');
  if (diagnostic.file === undefined || diagnostic.start === undefined) {
    return `${block.page}:${block.line} TS${diagnostic.code} ${message}`;
  }
  const { line, character } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start);
  return `${block.page}:${block.line + 1 + line}:${character + 1} TS${diagnostic.code} ${message}`;
}

/**
 * Checks blocks in the project at `dir` (compiler-host.ts parses the declaration files once for
 * all its programs); `overrides` replaces compiler options.
 */
export class BlockChecker {
  readonly #dir: string;
  readonly #options: ts.CompilerOptions;
  readonly #host: ts.CompilerHost;

  constructor(dir: string, overrides: Record<string, unknown> = {}) {
    const converted = ts.convertCompilerOptionsFromJson({ ...COMPILER_OPTIONS, ...overrides }, dir);
    if (converted.errors.length > 0) {
      throw new Error(ts.formatDiagnostics(converted.errors, ts.createCompilerHost({})));
    }
    this.#dir = dir;
    this.#options = converted.options;
    const blocksDir = join(dir, 'blocks') + sep;
    const host = cachingHost(this.#options, dir, (fileName) => fileName.startsWith(blocksDir));
    this.#host = host;
  }

  /** Each block's errors (an empty list when it compiles). */
  async check(blocks: readonly Block[]): Promise<Map<Block, string[]>> {
    const results = new Map<Block, string[]>();
    const files = fileNames(this.#dir, blocks);
    await Promise.all(
      [...files].map(async ([block, file]) => {
        await mkdir(dirname(file), { recursive: true });
        await writeFile(file, block.code);
      }),
    );
    const checked: Block[] = [];
    for (const block of blocks) {
      if (!block.flags.includes('partial')) {
        checked.push(block);
        continue;
      }
      const { diagnostics = [] } = ts.transpileModule(block.code, {
        fileName: files.get(block) ?? '',
        reportDiagnostics: true,
        compilerOptions: { target: ts.ScriptTarget.ESNext, allowJs: true },
      });
      results.set(
        block,
        diagnostics.map((diagnostic) => located(block, diagnostic)),
      );
    }
    // Programs: the blocks that change no other block's types together; each other block alone,
    // with the blocks of its page it names in `with=<name>`. Only the first `checks` blocks of a
    // group are reported from it.
    const groups: { blocks: Block[]; checks: number }[] = [];
    const together: Block[] = [];
    for (const block of checked) {
      const companions = block.flags.flatMap((flag) => {
        if (!flag.startsWith('with=')) return [];
        const name = flag.slice('with='.length);
        const named = blocks.find((other) => other.page === block.page && other.name === name);
        if (named === undefined) {
          results.set(block, [
            `${block.page}:${block.line} ${flag}: no block of the page is ${name}`,
          ]);
        }
        return named === undefined ? [] : [named];
      });
      if (results.has(block)) continue;
      if (companions.length === 0 && !augments(block)) together.push(block);
      else groups.push({ blocks: [block, ...companions], checks: 1 });
    }
    groups.unshift({ blocks: together, checks: together.length });
    for (const group of groups) {
      if (group.blocks.length === 0) continue;
      const roots = group.blocks.map((block) => files.get(block) ?? '');
      const program = ts.createProgram(roots, this.#options, this.#host);
      const global = [...program.getOptionsDiagnostics(), ...program.getGlobalDiagnostics()];
      for (const [index, block] of group.blocks.slice(0, group.checks).entries()) {
        const file = program.getSourceFile(roots[index] ?? '');
        const diagnostics =
          file === undefined
            ? global
            : [
                ...global,
                ...program.getSyntacticDiagnostics(file),
                ...program.getSemanticDiagnostics(file),
              ];
        results.set(
          block,
          diagnostics.map((diagnostic) => located(block, diagnostic)),
        );
      }
    }
    return results;
  }
}
