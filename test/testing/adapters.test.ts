/**
 * testSessions() with every adapter, through real HTTP requests to each framework's app (the
 * shared factories of test/helpers/apps/): the app gets `sessions.config`, and the helpers read
 * back what each request stored.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { assertSessionHas, assertSessionMissing } from '../../src/testing/assertions.js';
import { testSessions } from '../../src/testing/test-sessions.js';
import { expressApp } from '../helpers/apps/express.js';
import { fastifyApp } from '../helpers/apps/fastify.js';
import { fetchApp } from '../helpers/apps/fetch.js';
import { honoApp } from '../helpers/apps/hono.js';
import { koaApp } from '../helpers/apps/koa.js';
import { nodeApp } from '../helpers/apps/node.js';
import type { AppFactory, Routes, RunningApp } from '../helpers/apps/types.js';

const routes: Routes = {
  '/whoami': ({ session }) => String(session.get('user.name') ?? 'nobody'),
  '/flash': ({ session }) => {
    session.setFlashdata('notice', 'Saved');
    return 'ok';
  },
  '/login': async ({ session }) => {
    await session.regenerate(true);
    session.set('user', { name: 'Ada' });
    return 'ok';
  },
  '/rotate': async ({ session }) => {
    await session.regenerate();
    return 'ok';
  },
  '/logout': async ({ session }) => {
    await session.destroy();
    return 'ok';
  },
};

for (const factory of [expressApp, fastifyApp, koaApp, honoApp, fetchApp, nodeApp]) {
  adapterCases(factory);
}

function adapterCases(factory: AppFactory): void {
  describe(`${factory.framework}: testSessions()`, () => {
    const sessions = testSessions();
    let app: RunningApp;
    before(async () => {
      app = await factory.start({ session: sessions.config }, routes);
    });
    after(async () => {
      await app.close();
      await sessions.close();
    });
    const get = (path: string, cookie: string | undefined) =>
      fetch(`${app.url}${path}`, { headers: cookie === undefined ? {} : { cookie } });

    it('a route reads the pre-filled data', async () => {
      const cookie = await sessions.create({ user: { name: 'Ada' } });
      const response = await get('/whoami', cookie);
      assert.equal(await response.text(), 'Ada');
      const state = await sessions.after(response, cookie);
      assert.equal(state.id, state.previousId);
      assertSessionHas(state, 'user.name', 'Ada');
    });

    it('flashdata set by a route is stored for the next request', async () => {
      const cookie = await sessions.create({ user: { name: 'Ada' } });
      const state = await sessions.after(await get('/flash', cookie), cookie);
      assert.deepEqual(state.flash, { notice: 'Saved' });
      assertSessionHas(state, 'user');
    });

    it('regenerate(true): the data followed to the new ID, the old ID holds nothing', async () => {
      const cookie = await sessions.create({ cart: ['apple'] });
      const state = await sessions.after(await get('/login', cookie), cookie);
      assert.equal(state.regenerated, true);
      assert.notEqual(state.id, state.previousId);
      assert.deepEqual(state.data, { cart: ['apple'], user: { name: 'Ada' } });
      assert.equal((await sessions.inspect(cookie)).exists, false);
    });

    it('regenerate(): the old ID still leads to the session for the grace window', async () => {
      const cookie = await sessions.create({ cart: ['apple'] });
      const state = await sessions.after(await get('/rotate', cookie), cookie);
      assert.equal(state.regenerated, true);
      const old = await sessions.inspect(cookie);
      assert.equal(old.exists, true);
      assert.deepEqual(old.data, { cart: ['apple'] });
    });

    it('destroy(): after().destroyed, and nothing is stored', async () => {
      const cookie = await sessions.create({ user: { name: 'Ada' } });
      const state = await sessions.after(await get('/logout', cookie), cookie);
      assert.equal(state.destroyed, true);
      assert.equal(state.exists, false);
      assertSessionMissing(state, 'user');
    });
  });
}
