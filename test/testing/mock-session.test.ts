/**
 * start() / resume() / finish(): a real Session for code called without a server (CodeIgniter's
 * MockSession), whose result is read back from the store.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FakeClock } from '../../src/clock.js';
import { SessionClosedError, SessionValueError } from '../../src/errors.js';
import type { Session } from '../../src/session.js';
import { assertSessionHas, assertSessionMissing } from '../../src/testing/assertions.js';
import { testSessions } from '../../src/testing/test-sessions.js';

/** Code under test: what a route handler would call with its request's session. */
function addToCart(session: Session, item: string): void {
  if (session.has('cart')) session.push('cart', [item]);
  else session.set('cart', [item]);
  session.setFlashdata('notice', `Added ${item}`);
}

describe('testSessions().start() and finish()', () => {
  it('gives a real, open Session holding the pre-filled data, and finish() reads what was saved', async () => {
    const sessions = testSessions();
    const session = await sessions.start({ cart: ['apple'] });
    assert.equal(session.get('cart.0'), 'apple');
    addToCart(session, 'pear');
    const state = await sessions.finish(session);
    assert.equal(state.id, session.id);
    assert.equal(state.previousId, session.id);
    assertSessionHas(state, 'cart', ['apple', 'pear']);
    assert.deepEqual(state.flash, { notice: 'Added pear' });
    assert.deepEqual([state.regenerated, state.created, state.destroyed], [false, false, false]);
  });

  it('pre-filled flashdata and tempdata read as a previous request left them', async () => {
    const sessions = testSessions();
    const session = await sessions.start(
      { user: 'ada' },
      { flash: { notice: 'Saved' }, temp: { coupon: 'SAVE10' } },
    );
    assert.equal(session.getFlashdata('notice'), 'Saved');
    assert.equal(session.getTempdata('coupon'), 'SAVE10');
    const state = await sessions.finish(session);
    assert.deepEqual(state.flash, {}, 'flashdata lives for one request');
    assert.deepEqual(state.temp, { coupon: 'SAVE10' });
    assert.deepEqual(state.data, { user: 'ada', coupon: 'SAVE10' });
  });

  it('regenerate(true) in the code under test: regenerated, the data followed, the old ID empty', async () => {
    const sessions = testSessions();
    const session = await sessions.start({ cart: ['apple'] });
    const oldId = session.id;
    await session.regenerate(true);
    session.set('user', 'ada');
    const state = await sessions.finish(session);
    assert.equal(state.regenerated, true);
    assert.equal(state.previousId, oldId);
    assert.equal(state.id, session.id);
    assert.notEqual(state.id, oldId);
    assert.deepEqual(state.data, { cart: ['apple'], user: 'ada' });
    assert.equal((await sessions.inspect(oldId)).exists, false);
  });

  it('destroy() in the code under test: destroyed, nothing stored', async () => {
    const sessions = testSessions();
    const session = await sessions.start({ user: 'ada' });
    const id = session.id;
    await session.destroy();
    const state = await sessions.finish(session);
    assert.equal(state.destroyed, true);
    assert.equal(state.id, null);
    assert.equal(state.exists, false);
    assert.equal((await sessions.inspect(id)).exists, false);
  });

  it('resume() continues with the cookie of a snapshot, as the client’s next request would', async () => {
    const sessions = testSessions();
    const first = await sessions.start();
    addToCart(first, 'apple');
    const afterFirst = await sessions.finish(first);
    const second = await sessions.resume(afterFirst.cookie);
    assert.equal(second.getFlashdata('notice'), 'Added apple');
    addToCart(second, 'pear');
    const afterSecond = await sessions.finish(second);
    assert.equal(afterSecond.id, afterFirst.id);
    assertSessionHas(afterSecond, 'cart', ['apple', 'pear']);
    assertSessionHas(afterSecond, 'notice', 'Added pear');
  });

  it('resume() with a read-only request: changes throw', async () => {
    const sessions = testSessions();
    const cookie = await sessions.create({ user: 'ada' });
    const session = await sessions.resume(cookie, { readOnly: true });
    assert.equal(session.get('user'), 'ada');
    assert.throws(() => session.set('user', 'bob'), SessionClosedError);
    const state = await sessions.finish(session);
    assertSessionHas(state, 'user', 'ada');
  });

  it('a session that expired is not regenerated: the request starts a new one (created)', async () => {
    const clock = new FakeClock();
    const sessions = testSessions({ clock, expiration: 600 });
    const cookie = await sessions.create({ user: 'ada' });
    clock.advance(601);
    assert.equal((await sessions.inspect(cookie)).exists, false);
    const session = await sessions.resume(cookie);
    assert.equal(session.has('user'), false);
    session.set('visits', 1);
    const state = await sessions.finish(session);
    assert.equal(state.created, true);
    assert.equal(state.regenerated, false);
    assert.notEqual(state.id, state.previousId);
    assert.deepEqual(state.data, { visits: 1 });
  });

  it('a session older than timeToUpdate is regenerated when the next request starts (FakeClock)', async () => {
    const clock = new FakeClock();
    const sessions = testSessions({ clock, timeToUpdate: 300 });
    const cookie = await sessions.create({ user: 'ada' });
    clock.advance(299);
    const early = await sessions.finish(await sessions.resume(cookie));
    assert.equal(early.regenerated, false);
    clock.advance(2);
    const late = await sessions.finish(await sessions.resume(cookie));
    assert.equal(late.regenerated, true);
    assertSessionHas(late, 'user', 'ada');
    const old = await sessions.inspect(cookie);
    assert.equal(old.exists, true, 'the old ID leads to the session for regenerateGrace');
    clock.advance(31);
    assert.equal((await sessions.inspect(cookie)).exists, false);
  });

  it('an AJAX request is never regenerated automatically', async () => {
    const clock = new FakeClock();
    const sessions = testSessions({ clock, timeToUpdate: 300 });
    const cookie = await sessions.create({ user: 'ada' });
    clock.advance(301);
    const state = await sessions.finish(await sessions.resume(cookie, { ajax: true }));
    assert.equal(state.regenerated, false);
    assert.equal(state.cookie, cookie);
  });

  it('finish() reads the store: a save that fails leaves the stored session as it was', async () => {
    const sessions = testSessions({ maxPayloadBytes: 256 });
    const session = await sessions.start({ user: 'ada' });
    // Grown by reference, past what set() could see: the save at finish() fails.
    const essay: string[] = [];
    session.set('essay', essay);
    essay.push('x'.repeat(1000));
    await assert.rejects(sessions.finish(session), SessionValueError);
    const state = await sessions.inspect(session.id);
    assertSessionHas(state, 'user', 'ada');
    assertSessionMissing(state, 'essay');
  });

  it('finish() refuses a session it did not start, and a second finish()', async () => {
    const sessions = testSessions();
    const other = testSessions();
    const session = await other.start();
    await assert.rejects(sessions.finish(session), {
      name: 'TypeError',
      message: /finish\(\) takes a session that start\(\) or resume\(\)/,
    });
    await other.finish(session);
    await assert.rejects(other.finish(session), TypeError);
  });
});
