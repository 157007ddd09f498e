/** A file-driver writer SIGKILLed mid-write never leaves a torn session file (temp file + rename). */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { sessionFilePath } from '../../src/drivers/file/names.js';
import { isWholePayload, writeLoopKeys } from './file/payloads.js';

const root = await mkdtemp(join(tmpdir(), 'keepsake-file-torn-'));
after(() => rm(root, { recursive: true, force: true }));

for (const lock of ['flock', 'mkdir'] as const) {
  describe(`file driver (${lock}) killed while writing`, () => {
    it('a writer killed in the middle of writing leaves every file whole (old or new data)', async () => {
      const directory = join(root, `torn-${lock}`);
      const script = fileURLToPath(new URL('./file/write-loop.ts', import.meta.url));
      for (let round = 0; round < 3; round += 1) {
        const child = spawn(process.execPath, ['--import', 'tsx', script, directory, lock], {
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
          const text = await readFile(sessionFilePath(directory, 'ci_session', key), 'utf8');
          assert.ok(
            isWholePayload(text, index),
            `session ${index} holds a torn file (${text.length} bytes)`,
          );
        }
      }
      const leftovers = (await readdir(directory)).filter((name) => name.endsWith('.tmp'));
      process.stderr.write(`(${leftovers.length} temporary files left by the killed writers)\n`);
    });
  });
}
