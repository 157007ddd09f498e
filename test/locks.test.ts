/** The in-process per-key FIFO queue every driver sits behind (DESIGN.md, Locking → in process). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SessionLockTimeoutError } from '../src/errors.js';
import { KeyedQueue } from '../src/locks.js';

describe('KeyedQueue', () => {
  it('grants waiters in arrival order, each after the previous one released', async () => {
    const queue = new KeyedQueue();
    const order: number[] = [];
    const first = await queue.acquire('a', 1_000, 'test');
    const waiters = [1, 2, 3].map((n) =>
      queue.acquire('a', 1_000, 'test').then((release) => {
        order.push(n);
        return release;
      }),
    );
    assert.equal(queue.depth('a'), 4);
    first();
    for (const waiter of waiters) (await waiter)();
    assert.deepEqual(order, [1, 2, 3]);
    assert.equal(queue.depth('a'), 0);
  });

  it('never blocks one key behind another', async () => {
    const queue = new KeyedQueue();
    const holdA = await queue.acquire('a', 1_000, 'test');
    const releaseB = await queue.acquire('b', 1_000, 'test');
    releaseB();
    holdA();
  });

  it('tryAcquire takes a free key at once, and refuses a held one', () => {
    const queue = new KeyedQueue();
    const release = queue.tryAcquire('a');
    assert.ok(release !== undefined, 'a free key is taken');
    assert.equal(queue.tryAcquire('a'), undefined, 'a held key is refused');
    release();
    release(); // releasing twice is harmless and frees nothing more
    assert.equal(queue.depth('a'), 0);
    assert.ok(queue.tryAcquire('a') !== undefined, 'the key is free again');
  });

  it('tryAcquire never jumps the queue: a key with waiters is refused until they are served', async () => {
    const queue = new KeyedQueue();
    const holder = queue.tryAcquire('a');
    assert.ok(holder !== undefined);
    const waiting = queue.acquire('a', 1_000, 'test');
    holder();
    assert.equal(queue.tryAcquire('a'), undefined, 'the waiter was handed the key on release');
    (await waiting)();
    assert.ok(queue.tryAcquire('a') !== undefined);
  });

  it('a waiter that times out leaves the queue, and the next one still gets the key', async () => {
    const queue = new KeyedQueue();
    const holder = await queue.acquire('a', 1_000, 'test');
    const impatient = queue.acquire('a', 20, 'test');
    const patient = queue.acquire('a', 1_000, 'test');
    await assert.rejects(impatient, SessionLockTimeoutError);
    holder();
    (await patient)();
    assert.equal(queue.depth('a'), 0);
  });
});
