import assert from 'node:assert/strict';
import { SessionValueError } from '../errors.js';
import type { ConformanceTarget, TestFunctions } from './conformance.js';
import { managerFor, visit } from './conformance-lifecycle.js';

const LIMIT = 4_096;

/** Whether `error` is the size limit's SessionValueError, naming `bytes` (when given) and the limit. */
function isOversize(error: unknown, bytes?: number): boolean {
  assert.ok(error instanceof SessionValueError, `a SessionValueError, got ${String(error)}`);
  assert.match(error.message, new RegExp(`${LIMIT}-byte limit \\(maxPayloadBytes\\)`));
  if (bytes !== undefined) assert.match(error.message, new RegExp(` ${bytes} bytes`));
  return true;
}

/** The session-lifetime and data-protection guarantees, checked through a real session manager. */
export function securityGuarantees(target: ConformanceTarget, test: TestFunctions): void {
  const { describe, it } = test;

  describe('session size, lifetime and protection at rest', () => {
    it('set() refuses a value bigger than maxPayloadBytes, naming its size and the limit, and keeps the session', () =>
      managerFor(target, { maxPayloadBytes: LIMIT }, async ({ manager, store }) => {
        const { id } = await visit(manager, undefined, (s) => s.set('user', 'ada'));
        await visit(manager, id, (session) => {
          // "note":"…": 2 bytes per é, the key, and 5 bytes of JSON punctuation.
          const big = 'é'.repeat(LIMIT / 2);
          assert.throws(
            () => session.set('note', big),
            (error) => isOversize(error, LIMIT + 9),
          );
          assert.throws(
            () => session.set({ small: 1, list: ['x'.repeat(LIMIT)] }),
            (error) => isOversize(error),
          );
          assert.equal(session.get('small'), null, 'a refused set() changes nothing');
          session.set('note', 'short');
        });
        const after = await visit(manager, id);
        assert.equal(after.get('user'), 'ada');
        assert.equal(after.get('note'), 'short');
        assert.match((await store().inner.peek({ id, ip: null })) ?? '', /"note":"short"/);
      }));

    it('a session grown past maxPayloadBytes by reference fails at commit with the store unchanged', () =>
      managerFor(target, { maxPayloadBytes: LIMIT }, async ({ manager, store }) => {
        const { id } = await visit(manager, undefined, (s) => s.set('cart', { items: ['a'] }));
        const before = await store().inner.peek({ id, ip: null });
        await assert.rejects(
          visit(manager, id, (session) => {
            const cart = session.get('cart') as { items: string[] };
            for (let item = 0; item < LIMIT / 8; item += 1) cart.items.push(`item-${item}`);
          }),
          (error) => isOversize(error),
        );
        assert.equal(await store().inner.peek({ id, ip: null }), before, 'nothing half-written');
        const after = await visit(manager, id);
        assert.deepEqual(after.get('cart'), { items: ['a'] }, 'the lock was released');
      }));
  });
}
