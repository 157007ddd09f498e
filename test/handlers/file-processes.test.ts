import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { sessionFilePath } from '../../src/handlers/file/names.js';
import { CookieJar } from '../helpers/cookie-jar.js';
import { type ChildServer, startCounterServer } from '../helpers/processes.js';
import { isWholePayload, writeLoopKeys } from './file/payloads.js';

const root = await mkdtemp(join(tmpdir(), 'keepsake-file-processes-'));
after(() => rm(root, { recursive: true, force: true }));

const LOCKS = ['flock', 'mkdir'] as const;
const running: ChildServer[] = [];
afterEach(async () => {
  for (const server of running.splice(0)) await server.kill('SIGKILL');
});

/** Starts the counter app in a child that locks with `lock` (KEEPSAKE_FILE_LOCK is read at startup). */
async function startServer(
  lock: (typeof LOCKS)[number],
  config: Record<string, unknown>,
  delayMs = 0,
): Promise<ChildServer> {
  const previous = process.env.KEEPSAKE_FILE_LOCK;
  process.env.KEEPSAKE_FILE_LOCK = lock;
  try {
    const server = await startCounterServer({ driver: 'file', ...config }, { delayMs });
    running.push(server);
    return server;
  } finally {
    if (previous === undefined) delete process.env.KEEPSAKE_FILE_LOCK;
    else process.env.KEEPSAKE_FILE_LOCK = previous;
  }
}

async function count(jar: CookieJar, server: ChildServer): Promise<number> {
  const response = await jar.fetch(`${server.url}/count`);
  return ((await response.json()) as { count: number }).count;
}

for (const lock of LOCKS) {
  describe(`file driver across processes (${lock})`, () => {
    it('two processes × 150 concurrent increments of one session lose none', async () => {
      const savePath = join(root, `counter-${lock}`);
      const config = { savePath, lockWait: 30_000, lockTtl: 1_000 };
      const [first, second] = await Promise.all([
        startServer(lock, config, 1),
        startServer(lock, config, 1),
      ]);
      const jar = new CookieJar();
      const created = await jar.fetch(`${first.url}/inc`);
      assert.equal(created.status, 200);
      assert.ok(jar.get('ci_session'));
      const responses = await Promise.all(
        [first, second].flatMap((server) =>
          Array.from({ length: 150 }, () => jar.fetch(`${server.url}/inc`)),
        ),
      );
      assert.deepEqual(
        responses.filter((response) => response.status !== 200).map((r) => r.status),
        [],
      );
      assert.equal(await count(jar, second), 301, 'the creating request plus 300 increments');
    });

    it('a process SIGKILLed while it holds a session does not block the session', async () => {
      const savePath = join(root, `crash-${lock}`);
      const config = { savePath, lockWait: 5_000, lockTtl: 1_000 };
      const [holder, other] = await Promise.all([
        startServer(lock, config),
        startServer(lock, config),
      ]);
      const jar = new CookieJar();
      await jar.fetch(`${other.url}/inc`);
      const holding = holder.waitForLine('holding');
      const hold = jar.fetch(`${holder.url}/hold?ms=60000`).catch(() => undefined);
      await holding;
      await holder.kill('SIGKILL');
      await hold;
      const response = await jar.fetch(`${other.url}/inc`);
      assert.equal(response.status, 200, 'the other process got the lock within lockWait');
      assert.deepEqual(await response.json(), { count: 2 });
    });

    it('a writer killed in the middle of writing leaves every file whole (old or new data)', async () => {
      const savePath = join(root, `torn-${lock}`);
      const script = fileURLToPath(new URL('./file/write-loop.ts', import.meta.url));
      for (let round = 0; round < 3; round += 1) {
        const child = spawn(process.execPath, ['--import', 'tsx', script, savePath, lock], {
          stdio: ['ignore', 'pipe', 'inherit'],
        });
        const exited = once(child, 'exit');
        try {
          await new Promise<void>((resolve, reject) => {
            child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
              if (chunk.includes('writing')) resolve();
            });
            child.once('exit', (code) => reject(new Error(`writer exited early (${code})`)));
          });
          // Let it run a little, so the kill lands at an arbitrary point of the loop.
          await new Promise((resolve) => setTimeout(resolve, 100 + round * 70));
        } finally {
          child.kill('SIGKILL');
          await exited;
        }
        for (const [index, key] of writeLoopKeys().entries()) {
          const text = await readFile(sessionFilePath(savePath, 'ci_session', key), 'utf8');
          assert.ok(
            isWholePayload(text, index),
            `session ${index} holds a torn file (${text.length} bytes)`,
          );
        }
      }
      const leftovers = (await readdir(savePath)).filter((name) => name.endsWith('.tmp'));
      process.stderr.write(`(${leftovers.length} temporary files left by the killed writers)\n`);
    });
  });
}
