/** The in-process per-key FIFO queue every driver sits behind (DESIGN.md, Locking → in process). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KeyedQueue } from '../src/locks.js';

/** Acquires `key`, failing the test when the wait runs out. */
async function take(queue: KeyedQueue, key: string, waitMs = 1_000): Promise<() => void> {
  const release = await queue.acquire(key, waitMs);
  assert.ok(release !== undefined, `${key} was granted within ${waitMs} ms`);
  return release;
}

describe('KeyedQueue', () => {
  it('grants waiters in arrival order, each after the previous one released', async () => {
    const queue = new KeyedQueue();
    const order: number[] = [];
    const first = await take(queue, 'a');
    const waiters = [1, 2, 3].map((n) =>
      take(queue, 'a').then((release) => {
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
    const holdA = await take(queue, 'a');
    const releaseB = await take(queue, 'b');
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
    const waiting = take(queue, 'a');
    holder();
    assert.equal(queue.tryAcquire('a'), undefined, 'the waiter was handed the key on release');
    (await waiting)();
    assert.ok(queue.tryAcquire('a') !== undefined);
  });

  it('a waiter that times out leaves the queue, and the next one still gets the key', async () => {
    const queue = new KeyedQueue();
    const holder = await take(queue, 'a');
    const impatient = queue.acquire('a', 20);
    const patient = take(queue, 'a');
    assert.equal(await impatient, undefined, 'the impatient waiter gave up');
    holder();
    (await patient)();
    assert.equal(queue.depth('a'), 0);
  });
});
