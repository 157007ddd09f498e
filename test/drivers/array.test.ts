import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { array } from '../../src/drivers/array.js';
import { runConformanceSuite } from '../../src/testing/conformance.js';
import { lock } from '../../src/testing/conformance-store.js';
import { openStore } from '../../src/testing/index.js';

runConformanceSuite('array', { driver: () => array(), expiry: 'clock' });

async function put(store: Awaited<ReturnType<typeof openStore>>['store'], id: string) {
  const key = { id, ip: null };
  const { token } = await lock(store, key);
  await store.writeAndUnlock(key, token, `{"k":"${id[0]}"}`, 10);
  return key;
}

describe('array driver bounds', () => {
  it('never holds more than maxSessions, dropping the least recently written', async () => {
    const { store, warnings } = await openStore({
      driver: () => array({ maxSessions: 3 }),
      expiry: 'clock',
    });
    const keys = [];
    for (const letter of ['a', 'b', 'c', 'd']) keys.push(await put(store, letter.repeat(32)));
    assert.equal(await store.peek(keys[0] as (typeof keys)[0]), null);
    for (const key of keys.slice(1)) assert.notEqual(await store.peek(key), null);
    assert.equal(warnings.length, 1);
  });

  it('sweeps expired sessions before dropping live ones', async () => {
    const { store, clock } = await openStore({
      driver: () => array({ maxSessions: 2 }),
      expiry: 'clock',
    });
    const old = await put(store, '1'.repeat(32));
    clock.advance(8);
    const live = await put(store, '2'.repeat(32));
    clock.advance(5);
    const fresh = await put(store, '3'.repeat(32));
    assert.equal(await store.peek(old), null);
    assert.notEqual(await store.peek(live), null);
    assert.notEqual(await store.peek(fresh), null);
  });
});
