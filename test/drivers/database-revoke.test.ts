/** The database driver's revocation tombstones (see DatabaseStore.revoke): what they leave in the table. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { SessionKey } from '../../src/drivers/contract.js';
import { database, type SqlDialect } from '../../src/drivers/database.js';
import { openStore, type StoreHarness } from '../../src/testing/conformance.js';
import { lock, newKey, put } from '../../src/testing/conformance-store.js';
import { serviceSkip } from '../helpers/services.js';
import {
  createTable,
  DATABASE_SERVERS,
  dropTable,
  placeholder,
  queryRows,
  urlOf,
} from './database/servers.js';

/** The data column of every row stored for the key's ID. */
async function storedData(dialect: SqlDialect, table: string, key: SessionKey): Promise<Buffer[]> {
  const rows = await queryRows(
    dialect,
    `SELECT data FROM ${table} WHERE id = ${placeholder(dialect, 1)}`,
    [key.id],
  );
  return rows.map((row) => row.data as Buffer);
}

const TOMBSTONE_START = Buffer.concat([Buffer.of(0xff), Buffer.from('keepsake:revoked:')]);

for (const [dialect, label, port] of DATABASE_SERVERS) {
  const skip = await serviceSkip(label, '127.0.0.1', port);
  describe(`database driver revocation on ${label}`, { skip }, () => {
    const table = `keepsake_revoke_${dialect === 'postgres' ? 'pg' : 'my'}`;
    let harness: StoreHarness;
    before(async () => {
      await createTable(dialect, table, false);
      harness = await openStore({
        driver: () => database({ connection: urlOf(dialect), table }),
        expiry: 'clock',
      });
    });
    after(async () => {
      await harness.store.close();
      await dropTable(dialect, table);
    });

    it('leaves one tombstone row when no request holds the session, which reads as none and goes with GC', async () => {
      const { store, clock } = harness;
      const key = newKey();
      await put(harness, key, '{"user":"ada"}');
      await store.revoke?.(key);
      await store.revoke?.(key);
      const [data, ...more] = await storedData(dialect, table, key);
      assert.deepEqual(more, []);
      assert.ok(data?.subarray(0, TOMBSTONE_START.length).equals(TOMBSTONE_START));
      assert.equal(await store.peek(key), null);
      clock.advance(harness.context.lifetimeSeconds + 60);
      assert.ok(((await store.gc?.(harness.context.lifetimeSeconds)) ?? 0) >= 1);
      assert.deepEqual(await storedData(dialect, table, key), []);
    });

    it('a revoked holder that releases with discard leaves no row, and the next holder deletes a tombstone it reads', async () => {
      const { store } = harness;
      const fresh = newKey();
      const held = await lock(store, fresh);
      await store.revoke?.(fresh);
      assert.equal((await storedData(dialect, table, fresh)).length, 1);
      await store.unlock(fresh, held.token, true);
      assert.deepEqual(await storedData(dialect, table, fresh), []);

      const stored = newKey();
      await put(harness, stored, '{"user":"ada"}');
      const before = await lock(store, stored);
      await store.revoke?.(stored);
      await store.unlock(stored, before.token, false);
      assert.equal((await storedData(dialect, table, stored)).length, 1, 'the tombstone stays');
      const next = await lock(store, stored);
      assert.equal(next.payload, null);
      assert.deepEqual(await storedData(dialect, table, stored), [], 'deleted under the new lock');
      await store.unlock(stored, next.token, true);
    });
  });
}
