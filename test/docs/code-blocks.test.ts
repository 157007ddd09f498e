/**
 * The documentation's code compiles and runs. Every TypeScript and JavaScript block of README.md
 * and docs/**\/*.md is type-checked (strict, module nodenext) as a file of an app that has the
 * built keepsake installed (project.ts: `import … from 'keepsake/…'` resolves to dist/ through
 * package.json "exports"); a block marked ```ts partial is only parsed. A failing block fails its
 * own test with the page, the line and TypeScript's message. The README's Express example then
 * runs over real HTTP.
 *
 * dist/ is the one `npm run build` wrote (.ci/run builds before `npm test`); when it is missing or
 * older than a source file, this test builds it first.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import ts from 'typescript';
import { CookieJar } from '../helpers/cookie-jar.js';
import { listeningPort } from '../helpers/processes.js';
import { type Block, blocksOf, documentationBlocks, documentationPages } from './blocks.js';
import { augments, BlockChecker } from './check.js';
import { createProject, type Project, root } from './project.js';

const blocks = documentationBlocks(root);
const pages = documentationPages(root);

let project: Project | undefined;
let checker: BlockChecker;
let results = new Map<Block, string[]>();

before(async () => {
  project = await createProject();
  checker = new BlockChecker(project.dir);
  results = await checker.check(blocks);
});
after(() => project?.remove());

const title = (block: Block) =>
  `${block.page}:${block.line} ${block.flags.includes('partial') ? 'parses' : 'compiles'}`;

describe('the code blocks of README.md and docs/', { concurrency: true }, () => {
  it('are found on every page that has them', () => {
    const withBlocks = new Set(blocks.map((block) => block.page));
    for (const page of ['README.md', 'docs/frameworks/express.md', 'docs/drivers/custom.md']) {
      assert.ok(withBlocks.has(page), `no code block found in ${page}`);
    }
    assert.ok(pages.length >= 10, `documentation pages: ${pages.join(', ')}`);
    assert.ok(blocks.length >= 30, `only ${blocks.length} code blocks`);
  });

  for (const block of blocks) {
    it(title(block), () => {
      const errors = results.get(block);
      assert.ok(errors !== undefined, 'the block was not checked');
      if (errors.length > 0) assert.fail(`\n${errors.join('\n')}`);
    });
  }

  it("declare the session's shape in the one documented way", () => {
    // `import type {} from 'keepsake'` makes the file a module that loads keepsake's root types:
    // without it, a bundler project without moduleDetection: force takes the declaration for a
    // module of its own, replacing keepsake's types (test/types checks the form compiles).
    const declaring = blocks.filter((block) =>
      /declare\s+module\s+['"]keepsake['"]/.test(block.code),
    );
    assert.ok(declaring.length >= 7, 'README and every framework page show the declaration');
    for (const block of declaring) {
      assert.match(
        block.code,
        /^import type \{\} from 'keepsake';$/m,
        `${block.page}:${block.line} declares SessionDataMap without import type {} from 'keepsake'`,
      );
    }
  });

  it('are read from the fences as Markdown has them', () => {
    const page = [
      '```sh', // 1
      'npm test',
      '```',
      '1. A list item:',
      '', // 5
      '   ~~~~typescript partial',
      '   // server.ts — run it',
      '   const a = 1;',
      '   ```',
      '   ~~~~', // 10
      '````js',
      '```ts',
      '````',
      '```ts with=server.ts',
      'export {};', // 15
      '```',
    ].join('\n');
    const found = blocksOf('page.md', page).map(({ line, language, flags, name, code }) => ({
      line,
      language,
      flags,
      name,
      code,
    }));
    assert.deepEqual(found, [
      {
        line: 6,
        language: 'ts',
        flags: ['partial'],
        name: 'server.ts',
        code: '// server.ts — run it\nconst a = 1;\n```\n',
      },
      { line: 11, language: 'js', flags: [], name: null, code: '```ts\n' },
      { line: 14, language: 'ts', flags: ['with=server.ts'], name: null, code: 'export {};\n' },
    ]);
  });

  it('a block that does not compile is reported with its page, line and message', async () => {
    const page = [
      '# Broken',
      '',
      '```ts',
      "import { session } from 'keepsake/express';",
      'session({ cookieName: 42 });',
      '```',
      '',
      '```ts',
      "declare module 'keepsake' { interface SessionDataMap { visits: number } }",
      "import type { Session } from 'keepsake';",
      'declare const s: Session;',
      "s.set('visits', 'x');",
      '```',
      '',
      '```ts partial',
      'app.use(session());',
      '```',
    ].join('\n');
    const broken = blocksOf('broken.md', page);
    assert.equal(broken.length, 3);
    assert.ok(broken[1] !== undefined && augments(broken[1]));
    const found = await checker.check(broken);
    assert.match(found.get(broken[0] as Block)?.join('\n') ?? '', /^broken\.md:5:\d+ TS2322 /);
    assert.match(found.get(broken[1] as Block)?.join('\n') ?? '', /^broken\.md:12:\d+ TS2345 /m);
    assert.deepEqual(found.get(broken[2] as Block), [], 'a partial block is only parsed');
  });
});

describe("the README's Express example", () => {
  const children = new Set<ChildProcess>();
  after(() => {
    for (const child of children) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    }
  });

  it('counts visits over HTTP: 1, then 2 with the cookie, 1 for a new client', async () => {
    const example = blocks.find(
      (block) =>
        block.page === 'README.md' &&
        block.code.includes("from 'keepsake/express'") &&
        block.code.includes('.listen('),
    );
    assert.ok(example !== undefined, 'README.md shows an Express app that listens');
    assert.ok(project !== undefined);
    // Run as JavaScript, as TypeScript emits it: no loader to start in the child.
    const emit = (code: string) =>
      ts.transpileModule(code, {
        compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
      }).outputText;
    const app = join(project.dir, 'readme-express.js');
    const preload = join(project.dir, 'free-port.js');
    await writeFile(app, emit(example.code));
    await writeFile(
      preload,
      emit(await readFile(new URL('./free-port.ts', import.meta.url), 'utf8')),
    );
    // The file driver's default directory is keepsake-sessions under the OS temp directory.
    const temp = await mkdtemp(join(project.dir, 'tmp-'));
    const { NODE_TEST_CONTEXT: _, ...env } = process.env;
    const child = spawn(process.execPath, ['--import', pathToFileURL(preload).href, app], {
      cwd: project.dir,
      env: { ...env, TMPDIR: temp },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(child);
    const { port, output } = await listeningPort(child, 'the app');
    const visit = async (jar: CookieJar) => {
      const response = await jar.fetch(`http://127.0.0.1:${port}/`);
      return `${response.status} ${await response.text()}`;
    };
    const visitor = new CookieJar();
    assert.equal(await visit(visitor), '200 Visit number 1');
    assert.ok(visitor.get('ci_session') !== undefined, 'the first answer sets the session cookie');
    assert.equal(await visit(visitor), '200 Visit number 2');
    assert.equal(await visit(new CookieJar()), '200 Visit number 1');

    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    await exited;
    const stored = await readdir(join(temp, 'keepsake-sessions'));
    const sessions = stored.filter((name) => /^ci_session[0-9a-f]{32}$/.test(name));
    assert.equal(sessions.length, 2, `two sessions stored: ${stored.join(', ')}\n${output()}`);
    await rm(temp, { recursive: true, force: true });
  });
});
