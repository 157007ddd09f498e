/**
 * Child process for the torn-write test: rewrites SESSIONS session files through the file driver
 * as fast as it can, each time with the next generation of a large payload, until it is killed.
 * argv: savePath, lock mechanism. Prints "writing" once every file has been written once.
 */
import { FileHandler } from '../../../src/handlers/file.js';
import { openHarness } from '../../../src/testing/conformance.js';
import { payloadFor, writeLoopKeys } from './payloads.js';

const [savePath = '', lock = 'flock'] = process.argv.slice(2);
const handler = new FileHandler({ lock: lock === 'mkdir' ? 'mkdir' : 'flock' });
await openHarness(
  { createHandler: () => handler, savePath, expiry: 'settings' },
  { lifetimeSeconds: 3600 },
);
const keys = writeLoopKeys();
for (let generation = 0; ; generation += 1) {
  await Promise.all(
    keys.map(async (key, index) => {
      const { lock: held } = await handler.read(key, 5_000);
      await handler.write(key, held, payloadFor(index, generation));
    }),
  );
  if (generation === 0) process.stdout.write('writing\n');
}
