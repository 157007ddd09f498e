/**
 * The database and file drivers revoke natively (SessionStore.revoke): without it the core would
 * fall back to taking the session's lock, which waits for a request in flight.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { SessionDriver } from '../../src/drivers/contract.js';
import { database } from '../../src/drivers/database.js';
import { sessionFilePath } from '../../src/drivers/file/names.js';
import { file } from '../../src/drivers/file.js';
import { openStore } from '../../src/testing/conformance.js';
import { lock, newKey } from '../../src/testing/conformance-store.js';
import { serviceSkip } from '../helpers/services.js';
import { createTable, DATABASE_SERVERS, dropTable, urlOf } from './database/servers.js';

const root = await mkdtemp(join(tmpdir(), 'keepsake-revoke-support-'));
after(() => rm(root, { recursive: true, force: true }));

async function assertRevokes(driver: SessionDriver): Promise<void> {
  const { store } = await openStore({ driver: () => driver, expiry: 'clock' });
  try {
    assert.equal(typeof store.revoke, 'function');
  } finally {
    await store.close();
  }
}

describe('revoke is native in the file driver', () => {
  for (const mechanism of ['flock', 'mkdir'] as const) {
    it(`with ${mechanism} locks`, () =>
      assertRevokes(file({ directory: join(root, mechanism), lock: mechanism })));
  }

  it("in CodeIgniter's layout, where the holder of a revoked session cannot write it back", async () => {
    const directory = join(root, 'codeigniter');
    const harness = await openStore({
      driver: () => file({ directory, layout: 'codeigniter' }),
      expiry: 'clock',
    });
    const { store } = harness;
    try {
      assert.equal(typeof store.revoke, 'function');
      const key = newKey();
      const path = sessionFilePath(directory, 'ci_session', key, 'php');
      const lifetime = harness.context.lifetimeSeconds;
      const first = await lock(store, key);
      assert.equal(await store.writeAndUnlock(key, first.token, '{"user":"ada"}', lifetime), true);
      const held = await lock(store, key);
      assert.equal(held.payload, '{"user":"ada"}');
      await store.revoke?.(key);
      await assert.rejects(stat(path), { code: 'ENOENT' });
      assert.equal(await store.writeAndUnlock(key, held.token, '{"user":"back"}', lifetime), false);
      assert.equal(await store.peek(key), null);
      const next = await lock(store, key);
      assert.equal(next.payload, null);
      assert.equal(await store.writeAndUnlock(key, next.token, '{"user":"new"}', lifetime), true);
      assert.equal(await store.peek(key), '{"user":"new"}');
    } finally {
      await store.close();
    }
  });
});

for (const [dialect, label, port] of DATABASE_SERVERS) {
  const skip = await serviceSkip(label, '127.0.0.1', port);
  describe(`revoke is native in the database driver on ${label}`, { skip }, () => {
    const table = `keepsake_revoke_support_${dialect === 'postgres' ? 'pg' : 'my'}`;
    it('on its opened store', async () => {
      await createTable(dialect, table, false);
      try {
        await assertRevokes(database({ connection: urlOf(dialect), table }));
      } finally {
        await dropTable(dialect, table);
      }
    });
  });
}
