/**
 * Child process for the torn-write test: rewrites SESSIONS session files through the file driver
 * as fast as it can, each time with the next generation of a large payload, until it is killed.
 * argv: directory, lock mechanism. Prints "writing" once every file has been written once.
 */
import { file } from '../../../src/drivers/file.js';
import { LockProtocol } from '../../../src/lock-protocol.js';
import { openStore } from '../../../src/testing/conformance.js';
import { payloadFor, writeLoopKeys } from './payloads.js';

const [directory = '', lock = 'flock'] = process.argv.slice(2);
const { store, context } = await openStore(
  { driver: () => file({ directory, lock: lock === 'mkdir' ? 'mkdir' : 'flock' }), expiry: 'real' },
  { lifetimeSeconds: 3600 },
);
const protocol = new LockProtocol(store, {
  driver: 'file',
  lockTtlMs: context.lockTtlMs,
  ioTimeoutMs: context.ioTimeoutMs,
  logger: context.logger,
});
const keys = writeLoopKeys();
for (let generation = 0; ; generation += 1) {
  await Promise.all(
    keys.map(async (key, index) => {
      const { lock: held } = await protocol.acquire(key, 5_000);
      await protocol.write(held, payloadFor(index, generation), 3600);
    }),
  );
  if (generation === 0) process.stdout.write('writing\n');
}
