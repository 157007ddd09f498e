/**
 * The complete test files of docs/testing.md, exactly as printed, each run as its first line says
 * (`node --import tsx --test <file>`): the Express, Fastify and start()/finish() examples. Their
 * `keepsake/…` imports are pointed at the source; everything else resolves from the repository's
 * node_modules, as in a user's project.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../../', import.meta.url));

/** Where `keepsake/<name>` is in the source: an adapter, a driver, the testing kit or the root. */
function sourceOf(specifier: string): string {
  const name = specifier.slice('keepsake/'.length);
  if (specifier === 'keepsake') return join(root, 'src/index.ts');
  if (name === 'testing') return join(root, 'src/testing/index.ts');
  const adapter = join(root, `src/adapters/${name}.ts`);
  return existsSync(adapter) ? adapter : join(root, `src/drivers/${name}.ts`);
}

/** This process's environment, without what makes a node:test child report to its parent runner. */
function standaloneEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.NODE_TEST_CONTEXT;
  return env;
}

interface Example {
  readonly name: string;
  readonly code: string;
  /** How many tests the file declares. */
  readonly tests: number;
}

async function examples(): Promise<Example[]> {
  const page = await readFile(join(root, 'docs/testing.md'), 'utf8');
  return [...page.matchAll(/```ts\n([\s\S]*?)```/g)]
    .map((match) => match[1] ?? '')
    .filter((code) => code.includes("from 'node:test'"))
    .map((code, index) => ({
      name: /^\/\/ (\S+\.test\.ts) /.exec(code)?.[1] ?? `example-${index}.test.ts`,
      code,
      tests: code.match(/^test\(/gm)?.length ?? 0,
    }));
}

describe('docs/testing.md', () => {
  let directory = '';
  before(async () => {
    // Inside the repository (its ignored .tmp/), so that express and fastify resolve as they
    // would in the user's project.
    await mkdir(join(root, '.tmp'), { recursive: true });
    directory = await mkdtemp(join(root, '.tmp', 'docs-testing-'));
  });
  after(() => rm(directory, { recursive: true, force: true }));

  it('shows complete test files for Express, Fastify and start()/finish()', async () => {
    const found = await examples();
    assert.deepEqual(
      found.map(({ name }) => name),
      ['account.test.ts', 'cart.test.ts', 'cart-service.test.ts'],
    );
    assert.match(found[0]?.code ?? '', /from 'keepsake\/express'/);
    assert.match(found[1]?.code ?? '', /from 'keepsake\/fastify'/);
    assert.match(found[2]?.code ?? '', /sessions\.start\(/);
  });

  it('each of them passes, run as the page says', async () => {
    const found = await examples();
    await Promise.all(
      found.map(async ({ name, code, tests }) => {
        const source = code.replace(
          /from '(keepsake(?:\/[a-z]+)?)'/g,
          (_, specifier: string) => `from '${pathToFileURL(sourceOf(specifier)).href}'`,
        );
        const path = join(directory, name);
        await writeFile(path, source);
        const { stdout } = await run(
          process.execPath,
          ['--import', 'tsx', '--test', '--test-reporter=tap', path],
          { cwd: root, env: standaloneEnv() },
        ).catch((error: { stdout?: string; stderr?: string }) => {
          assert.fail(`${name} failed:\n${error.stdout ?? ''}\n${error.stderr ?? ''}`);
        });
        assert.ok(tests > 0, `${name} declares tests`);
        assert.match(stdout, new RegExp(`^# pass ${tests}$`, 'm'), `${name}:\n${stdout}`);
        assert.match(stdout, /^# fail 0$/m, `${name}:\n${stdout}`);
      }),
    );
  });
});
