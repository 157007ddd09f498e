import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ArrayHandler } from '../../src/handlers/array.js';
import { openHarness, runConformanceSuite } from '../../src/testing/conformance.js';

runConformanceSuite('array', { createHandler: () => new ArrayHandler(), expiry: 'settings' });

describe('array handler bounds', () => {
  it('never holds more than maxSessions, dropping the least recently written', async () => {
    const handler = new ArrayHandler({ maxSessions: 3 });
    const { warnings } = await openHarness({ createHandler: () => handler, expiry: 'settings' });
    const keys = ['a', 'b', 'c', 'd'].map((letter) => ({ id: letter.repeat(32), ip: null }));
    for (const key of keys) {
      const { lock } = await handler.read(key, 100);
      await handler.write(key, lock, `{"k":"${key.id[0]}"}`);
    }
    assert.equal(handler.size, 3);
    assert.equal(await handler.peek(keys[0] as (typeof keys)[0]), null);
    assert.equal(await handler.peek(keys[3] as (typeof keys)[0]), '{"k":"d"}');
    assert.equal(warnings.length, 1);
  });

  it('sweeps expired sessions before dropping live ones', async () => {
    const handler = new ArrayHandler({ maxSessions: 2 });
    const { clock } = await openHarness(
      { createHandler: () => handler, expiry: 'settings' },
      { lifetimeSeconds: 10 },
    );
    const [old, live, fresh] = ['1', '2', '3'].map((digit) => ({
      id: digit.repeat(32),
      ip: null,
    })) as [{ id: string; ip: null }, { id: string; ip: null }, { id: string; ip: null }];
    let locked = await handler.read(old, 100);
    await handler.write(old, locked.lock, '{}');
    clock.advance(8);
    locked = await handler.read(live, 100);
    await handler.write(live, locked.lock, '{}');
    clock.advance(5);
    locked = await handler.read(fresh, 100);
    await handler.write(fresh, locked.lock, '{}');
    assert.equal(handler.size, 2);
    assert.equal(await handler.peek(live), '{}');
    assert.equal(await handler.peek(fresh), '{}');
  });
});
