/**
 * A throwaway app project that has keepsake installed as a user has it: its package.json and the
 * built dist/, resolved through package.json "exports". The build is this checkout's (`npm run
 * build`, which .ci/run runs before `npm test`); it is rebuilt here only when dist/ is missing or
 * older than a source file, under a lock so that the tests using it build it once. dist/ is
 * copied into the project, so a build started later (test/package rebuilds it) cannot pull it away
 * mid-check. Every other package comes from the repository's node_modules, through symlinks.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

export const root = fileURLToPath(new URL('../../', import.meta.url));

/** Files a complete build has: tsc's first, the CommonJS stubs' (written last). */
const COMPLETE = ['index.d.ts', 'adapters/node.d.ts', 'testing/index.d.cts', 'adapters/node.d.cts'];
/** What the build reads: a change to any of these makes dist/ stale. */
const BUILD_INPUTS = ['src', 'package.json', 'tsconfig.json', 'scripts/cjs-stubs.mjs'];

/** The modification times of the files under `path` (a file deleted meanwhile has none). */
async function mtimes(path: string): Promise<number[]> {
  try {
    const info = await stat(path);
    if (!info.isDirectory()) return [info.mtimeMs];
    const entries = await readdir(path);
    return (await Promise.all(entries.map((entry) => mtimes(join(path, entry))))).flat();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
}

/** Why dist/ must be (re)built, or null when it is current. */
async function staleBuild(): Promise<string | null> {
  const dist = join(root, 'dist');
  if (!COMPLETE.every((file) => existsSync(join(dist, file)))) return 'dist/ is missing';
  const built = Math.min(...(await mtimes(dist)));
  const inputs = (await Promise.all(BUILD_INPUTS.map((input) => mtimes(join(root, input))))).flat();
  return Math.max(...inputs) > built ? 'a source file is newer than dist/' : null;
}

const LOCK = join(root, '.cache/docs-build.lock');
/** A lock older than this was left by a process that died; it is taken over. */
const STALE_LOCK_MS = 10 * 60_000;

/**
 * Runs `task` while holding a lock file shared by the tests that use the build (this file's
 * callers in test/docs and test/types run concurrently): one of them builds, the others wait.
 */
async function withBuildLock<T>(task: () => Promise<T>): Promise<T> {
  await mkdir(dirname(LOCK), { recursive: true });
  for (;;) {
    try {
      await writeFile(LOCK, String(process.pid), { flag: 'wx' });
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const age = await stat(LOCK).then(
        (info) => Date.now() - info.mtimeMs,
        () => 0,
      );
      if (age > STALE_LOCK_MS) await rm(LOCK, { force: true });
      else await setTimeout(100);
    }
  }
  try {
    return await task();
  } finally {
    await rm(LOCK, { force: true });
  }
}

/** Runs `npm run build` when dist/ is missing or stale. */
async function ensureBuilt(): Promise<void> {
  const reason = await staleBuild();
  if (reason === null) return;
  process.stderr.write(`keepsake docs test: ${reason}; running npm run build\n`);
  await new Promise<void>((resolve, reject) => {
    execFile(
      'npm',
      ['run', 'build', '--silent'],
      { cwd: root, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error === null) resolve();
        else reject(new Error(`npm run build failed:\n${stdout}${stderr}`));
      },
    );
  });
}

export interface Project {
  /** The project's directory: package.json ("type": "module") and node_modules/. */
  readonly dir: string;
  remove(): Promise<void>;
}

/** Creates the app project (in the OS temp directory). */
export async function createProject(): Promise<Project> {
  const dir = await mkdtemp(join(tmpdir(), 'keepsake-docs-'));
  const modules = join(dir, 'node_modules');
  const installed = join(modules, 'keepsake');
  const remove = () => rm(dir, { recursive: true, force: true });
  try {
    await mkdir(installed, { recursive: true });
    await withBuildLock(async () => {
      await ensureBuilt();
      await cp(join(root, 'package.json'), join(installed, 'package.json'));
      await cp(join(root, 'dist'), join(installed, 'dist'), { recursive: true });
    });
    if (!COMPLETE.every((file) => existsSync(join(installed, 'dist', file)))) {
      throw new Error('dist/ changed while it was copied (a build ran meanwhile): run it again');
    }
  } catch (error) {
    await remove();
    throw error;
  }
  const dependencies = await readdir(join(root, 'node_modules'));
  await Promise.all([
    writeFile(join(dir, 'package.json'), JSON.stringify({ name: 'app', type: 'module' })),
    ...dependencies
      .filter((name) => !name.startsWith('.') && name !== 'keepsake')
      .map((name) => symlink(join(root, 'node_modules', name), join(modules, name), 'junction')),
  ]);
  return { dir, remove };
}
