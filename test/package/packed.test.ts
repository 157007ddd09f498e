/**
 * The package as users get it: builds and packs the working tree, installs the tarball (with
 * express from the registry) into throwaway apps, and drives each app over real HTTP — a visit
 * counter, a flash message, login and logout — on this Node (20 in CI) and on Node 22 and 24
 * (scripts/node-versions.sh fetches them). The apps are in ./.apps: an ES module in TypeScript
 * (module nodenext, type-checked with the repository's TypeScript, then run) and a CommonJS
 * JavaScript app that require()s keepsake. The TypeScript app also type-checks as a CommonJS
 * project (node16, nodenext) and under moduleResolution bundler.
 *
 * One install serves every Node version; the copies for 22 and 24 only rebuild the native fs-ext
 * addon for their ABI (offline, against the fetched headers). Without network for the Node 22/24
 * binaries those runs are skipped loudly; with KEEPSAKE_REQUIRE_SERVICES=1 that is a failure.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { cp, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CookieJar } from '../helpers/cookie-jar.js';
import { listeningPort } from '../helpers/processes.js';
import { servicesRequired } from '../helpers/services.js';
import { projects } from './typecheck.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const apps = fileURLToPath(new URL('./.apps/', import.meta.url));
const typecheck = fileURLToPath(new URL('./typecheck.ts', import.meta.url));
const manifest = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as {
  exports: Record<string, unknown>;
  peerDependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

interface Output {
  stdout: string;
  stderr: string;
}

/** Runs a command to completion; rejects with its output when it exits non-zero. */
function run(
  command: string,
  args: string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv },
): Promise<Output> {
  return new Promise((resolve, reject) => {
    execFile(
      command,
      args,
      { cwd: options.cwd, env: options.env ?? childEnv(), maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error === null) resolve({ stdout, stderr });
        else reject(new Error(`${command} ${args.join(' ')} failed:\n${stdout}${stderr}`));
      },
    );
  });
}

/** This process's environment minus node:test's own marker, with `bin` first on PATH. */
function childEnv(bin = dirname(process.execPath), extra: NodeJS.ProcessEnv = {}) {
  const { NODE_TEST_CONTEXT: _, ...env } = process.env;
  return { ...env, PATH: `${bin}${delimiter}${env.PATH ?? ''}`, ...extra };
}

interface NodeTarget {
  major: string;
  /** process.version of that Node. */
  version: string;
  /** The node binary. */
  bin: string;
  /** Headers to build native addons against (the fetched packages); null for this Node. */
  nodedir: string | null;
}

const thisNode: NodeTarget = {
  major: process.versions.node.split('.')[0] ?? '',
  version: process.version,
  bin: process.execPath,
  nodedir: null,
};

/** Node 22 and 24 from scripts/node-versions.sh, or a skip reason when they cannot be fetched. */
async function otherNodes(): Promise<NodeTarget[] | string> {
  const wanted = ['22', '24'].filter((major) => major !== thisNode.major);
  try {
    const { stdout } = await run('bash', [join(root, 'scripts/node-versions.sh'), ...wanted], {
      cwd: root,
    });
    const dirs = stdout.trim().split('\n');
    return await Promise.all(
      wanted.map(async (major, index) => {
        const dir = dirs[index] ?? '';
        const bin = join(dir, 'bin/node');
        const version = (await run(bin, ['-p', 'process.version'], { cwd: root })).stdout.trim();
        return { major, version, bin, nodedir: dir };
      }),
    );
  } catch (error) {
    const message = `Node ${wanted.join(' and ')} could not be fetched from the npm registry`;
    if (servicesRequired) {
      throw new Error(`${message}, and KEEPSAKE_REQUIRE_SERVICES=1 requires them.`, {
        cause: error,
      });
    }
    const lines = (error as Error).message.split('\n');
    const reason =
      lines.find((line) => /^npm error (?!code|syscall|errno)/.test(line)) ?? lines.at(-1);
    process.stderr.write(
      `\n*** SKIPPING the packed-package tests on Node ${wanted.join(' and ')}: ${message} ` +
        `(${reason?.trim()}). ***\n\n`,
    );
    return `${message} (skipped; set KEEPSAKE_REQUIRE_SERVICES=1 to make this a failure)`;
  }
}

const fetched = await otherNodes();
const targets: [NodeTarget, string | false][] = [
  [thisNode, false],
  ...(typeof fetched === 'string'
    ? ['22', '24']
        .filter((major) => major !== thisNode.major)
        .map((major): [NodeTarget, string] => [
          { major, version: '', bin: '', nodedir: null },
          fetched,
        ])
    : fetched.map((target): [NodeTarget, false] => [target, false])),
];

let work = '';
let tarballFiles: string[] = [];
/** typecheck.ts's errors per kind of TypeScript project. */
let typeErrors: Record<string, string[]> = {};
/** The installed workspace (esm/, cjs/, node_modules/) per Node major version. */
const workspaces = new Map<string, string>();
const children = new Set<ChildProcess>();

async function prepare(): Promise<void> {
  work = await mkdtemp(join(tmpdir(), 'keepsake-packed-'));
  // Built from a copy of the working tree: the build empties dist/ first, and other test files
  // (the documentation checks) read the project's own dist/ meanwhile.
  const source = join(work, 'source');
  for (const entry of [
    'package.json',
    'README.md',
    'LICENSE',
    'tsconfig.json',
    'src',
    'docs',
    'scripts',
  ]) {
    await cp(join(root, entry), join(source, entry), { recursive: true });
  }
  await symlink(join(root, 'node_modules'), join(source, 'node_modules'), 'dir');
  await run('npm', ['run', 'build', '--silent'], { cwd: source });
  const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', work], {
    cwd: source,
  });
  const [packed] = JSON.parse(stdout) as { filename: string; files: { path: string }[] }[];
  assert.ok(packed !== undefined, stdout);
  tarballFiles = packed.files.map((file) => file.path);

  const workspace = join(work, `node-${thisNode.major}`);
  await cp(apps, workspace, { recursive: true });
  const dependency = (name: string) => manifest.devDependencies[name] ?? 'latest';
  await writeFile(
    join(workspace, 'package.json'),
    JSON.stringify({
      name: 'keepsake-packed-apps',
      private: true,
      dependencies: {
        keepsake: `file:${join(work, packed.filename)}`,
        express: dependency('express'),
      },
      devDependencies: {
        '@types/express': dependency('@types/express'),
        '@types/node': dependency('@types/node'),
      },
    }),
  );
  await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund'], {
    cwd: workspace,
  });
  workspaces.set(thisNode.major, workspace);

  // Meanwhile: the TypeScript checks (they emit the app to esm/build), and for the other Node
  // versions a copy of the workspace whose native addon is rebuilt for their ABI.
  const copies = targets.flatMap(([target, skip]) =>
    skip === false && target.nodedir !== null
      ? [{ target, copy: join(work, `node-${target.major}`) }]
      : [],
  );
  const [checked] = await Promise.all([
    run(process.execPath, ['--import', 'tsx', typecheck, workspace], { cwd: root }),
    ...copies.map(async ({ target, copy }) => {
      await cp(workspace, copy, {
        recursive: true,
        verbatimSymlinks: true,
        // Not what typecheck.ts is writing meanwhile; the compiled app is copied below.
        filter: (source) => !/[/\\](?:typecheck-\d+|build)$/.test(source),
      });
      await run('npm', ['rebuild', 'fs-ext', '--offline', '--no-audit', '--no-fund'], {
        cwd: copy,
        env: childEnv(dirname(target.bin), { npm_config_nodedir: target.nodedir ?? '' }),
      });
    }),
  ]);
  typeErrors = JSON.parse(checked.stdout) as Record<string, string[]>;
  const appErrors = typeErrors[projects[0]?.label ?? ''] ?? [];
  if (appErrors.length > 0) throw new Error(`the app did not compile:\n${appErrors.join('\n')}`);
  for (const { target, copy } of copies) {
    await cp(join(workspace, 'esm/build'), join(copy, 'esm/build'), { recursive: true });
    workspaces.set(target.major, copy);
  }
}

interface Server {
  url: string;
  stop(): Promise<void>;
}

/** Starts an app (it prints `listening <port>`) with its own session directory. */
async function startApp(node: string, cwd: string, script: string): Promise<Server> {
  const savePath = await mkdtemp(join(work, 'sessions-'));
  const child = spawn(node, [script], {
    cwd,
    env: childEnv(dirname(node), { SAVE_PATH: savePath }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  const { port } = await listeningPort(child, script);
  return {
    url: `http://127.0.0.1:${port}`,
    async stop() {
      if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
        const exited = once(child, 'exit');
        process.kill(child.pid, 'SIGTERM');
        await exited;
      }
      children.delete(child);
      const files = await readdir(savePath);
      assert.ok(
        files.some((name) => name.startsWith('ci_session')),
        `the file driver stored its sessions in the savePath: ${files.join(', ')}`,
      );
    },
  };
}

/** The visit counter, the flash message and login/logout, over HTTP. */
async function exercise(url: string, node: string): Promise<void> {
  const json = async (jar: CookieJar, path: string, method = 'GET') => {
    const response = await jar.fetch(`${url}${path}`, { method });
    const text = await response.text();
    return { status: response.status, body: text === '' ? null : JSON.parse(text) };
  };

  const version = (await json(new CookieJar(), '/version')).body as { node: string };
  assert.equal(version.node, node, 'the app runs on the Node version under test');

  const visitor = new CookieJar();
  for (const visits of [1, 2, 3]) {
    assert.deepEqual(await json(visitor, '/visits'), { status: 200, body: { visits } });
  }
  assert.deepEqual(await json(new CookieJar(), '/visits'), {
    status: 200,
    body: { visits: 1 },
  });

  const reader = new CookieJar();
  assert.equal((await json(reader, '/flash', 'POST')).status, 204);
  assert.deepEqual((await json(reader, '/flash')).body, { notice: 'Saved!' });
  assert.deepEqual((await json(reader, '/flash')).body, { notice: null });

  const browser = new CookieJar();
  await json(browser, '/visits');
  const anonymous = browser.get('ci_session');
  assert.ok(anonymous !== undefined, 'a session cookie before login');
  assert.deepEqual(await json(browser, '/me'), { status: 401, body: { user: null } });
  assert.equal((await json(browser, '/login?name=ada', 'POST')).status, 204);
  const loggedIn = browser.get('ci_session');
  assert.ok(loggedIn !== undefined && loggedIn !== anonymous, 'login gives a new session ID');
  assert.deepEqual(await json(browser, '/me'), { status: 200, body: { user: 'ada' } });
  assert.deepEqual(await json(browser, '/visits'), { status: 200, body: { visits: 2 } });

  const beforeLogin = new CookieJar();
  beforeLogin.set('ci_session', anonymous);
  assert.equal((await json(beforeLogin, '/me')).status, 401, 'the pre-login ID is gone');

  assert.equal((await json(browser, '/logout', 'POST')).status, 204);
  assert.equal(browser.get('ci_session'), undefined, 'logout expires the cookie');
  assert.deepEqual(await json(browser, '/me'), { status: 401, body: { user: null } });
  const replay = new CookieJar();
  replay.set('ci_session', loggedIn);
  assert.equal((await json(replay, '/me')).status, 401, 'the logged-in ID is gone');
}

describe('the packed package', { concurrency: true, timeout: 600_000 }, () => {
  before(prepare, { timeout: 600_000 });
  after(async () => {
    for (const child of children) {
      const running = child.exitCode === null && child.signalCode === null;
      if (child.pid !== undefined && running) process.kill(child.pid, 'SIGTERM');
    }
    if (work !== '') await rm(work, { recursive: true, force: true });
  });

  it('ships LICENSE, every exports target and no source maps', () => {
    assert.ok(tarballFiles.includes('LICENSE'));
    assert.deepEqual(
      tarballFiles.filter((path) => path.endsWith('.map')),
      [],
    );
    const targetsOf = (value: unknown): string[] =>
      typeof value === 'string'
        ? [value]
        : value !== null && typeof value === 'object'
          ? Object.values(value).flatMap(targetsOf)
          : [];
    for (const target of targetsOf(manifest.exports)) {
      assert.ok(tarballFiles.includes(target.replace(/^\.\//, '')), `${target} is packed`);
    }
  });

  for (const project of projects) {
    it(`the TypeScript app type-checks in ${project.label}`, () => {
      assert.deepEqual(typeErrors[project.label], []);
    });
  }

  for (const [target, skip] of targets) {
    describe(`on Node ${target.major}`, { skip, concurrency: true }, () => {
      it('the native fs-ext addon loads (built for this Node)', async () => {
        const cwd = workspaces.get(target.major) ?? '';
        await run(target.bin, ['-e', "require('fs-ext').flockSync"], { cwd });
      });

      it('the ES module TypeScript app keeps count, flashes, logs in and out', async () => {
        const cwd = join(workspaces.get(target.major) ?? '', 'esm');
        const server = await startApp(target.bin, cwd, 'build/app.js');
        try {
          await exercise(server.url, target.version);
        } finally {
          await server.stop();
        }
      });

      it('the CommonJS app (require) keeps count, flashes, logs in and out', async () => {
        const cwd = join(workspaces.get(target.major) ?? '', 'cjs');
        const server = await startApp(target.bin, cwd, 'app.js');
        try {
          await exercise(server.url, target.version);
        } finally {
          await server.stop();
        }
      });

      it('require() loads every subpath, as the same module import() loads', async () => {
        const cwd = join(workspaces.get(target.major) ?? '', 'cjs');
        const { stdout } = await run(target.bin, ['subpaths.js'], { cwd });
        const results = JSON.parse(stdout) as {
          specifier: string;
          same?: boolean;
          code?: string;
          message?: string;
        }[];
        const subpaths = Object.keys(manifest.exports).filter((key) => key !== './package.json');
        assert.deepEqual(
          results.map((result) => result.specifier),
          subpaths.map((subpath) => `keepsake${subpath.slice(1)}`),
        );
        for (const result of results) {
          if (result.same === true) continue;
          // An adapter whose framework is not installed: the framework is what is missing.
          const missing = /Cannot find (?:package|module) '([^']+)'/.exec(
            result.message ?? '',
          )?.[1];
          assert.ok(
            result.code === 'ERR_MODULE_NOT_FOUND' &&
              missing !== undefined &&
              Object.keys(manifest.peerDependencies).some(
                (peer) => missing === peer || missing.startsWith(`${peer}/`),
              ),
            `${result.specifier}: ${JSON.stringify(result)}`,
          );
        }
      });
    });
  }
});
