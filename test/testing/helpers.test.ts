/**
 * keepsake/testing's session helpers on real apps: Express behind a listening server (fetch), and
 * Fastify through app.inject(). Each case fills a session, runs a request with its cookie, and
 * checks what the helpers read back from the store.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import express from 'express';
import Fastify, { type FastifyInstance } from 'fastify';
import { session as expressSession } from '../../src/adapters/express.js';
import { session as fastifySession } from '../../src/adapters/fastify.js';
import type { SessionConfig } from '../../src/config.js';
import { assertSessionHas, assertSessionMissing } from '../../src/testing/assertions.js';
import { type SessionSnapshot, testSessions } from '../../src/testing/test-sessions.js';

const ID = /^[0-9a-f]{32}$/;

function expressAppFor(config: SessionConfig) {
  const app = express();
  const middleware = expressSession(config);
  app.use(middleware);
  app.get('/profile', (req, res) => {
    if (!req.session.has('user')) {
      res.status(401).send('Please log in');
      return;
    }
    res.send(`Hello ${String(req.session.get('user.name'))}`);
  });
  app.get('/notice', (req, res) => {
    res.send(String(req.session.getFlashdata('notice') ?? 'nothing'));
  });
  app.post('/save', (req, res) => {
    req.session.setFlashdata('notice', 'Saved');
    res.redirect(303, '/notice');
  });
  app.post('/login', async (req, res) => {
    await req.session.regenerate(true);
    req.session.set('user', { id: 7, name: 'Ada' });
    res.redirect(303, '/profile');
  });
  app.post('/logout', async (req, res) => {
    await req.session.destroy();
    res.redirect(303, '/');
  });
  return { app, middleware };
}

async function fastifyAppFor(config: SessionConfig): Promise<FastifyInstance> {
  const app = Fastify();
  await app.register(fastifySession(config));
  app.get('/profile', async (request, reply) => {
    if (!request.session.has('user')) return reply.code(401).send('Please log in');
    return `Hello ${String(request.session.get('user.name'))}`;
  });
  app.get('/notice', async (request) =>
    String(request.session.getFlashdata('notice') ?? 'nothing'),
  );
  app.post('/save', async (request, reply) => {
    request.session.setFlashdata('notice', 'Saved');
    return reply.redirect('/notice', 303);
  });
  app.post('/login', async (request, reply) => {
    await request.session.regenerate(true);
    request.session.set('user', { id: 7, name: 'Ada' });
    return reply.redirect('/profile', 303);
  });
  app.post('/logout', async (request, reply) => {
    await request.session.destroy();
    return reply.redirect('/', 303);
  });
  return app;
}

/** What a test needs from an app, whatever the framework: a request with a Cookie header. */
interface Client {
  request(
    method: 'GET' | 'POST',
    path: string,
    cookie: string | undefined,
  ): Promise<{ status: number; body: string; response: Parameters<Sessions['after']>[0] }>;
}

type Sessions = ReturnType<typeof testSessions>;

/** The same cases for each framework: `client` is how that framework's app is called. */
function sessionCases(
  framework: string,
  setUp: (sessions: Sessions) => Promise<Client & { close(): Promise<void> }>,
): void {
  describe(`${framework}: testSessions() through real requests`, () => {
    const sessions = testSessions();
    let client: Client & { close(): Promise<void> };
    before(async () => {
      client = await setUp(sessions);
    });
    after(async () => {
      await client.close();
      await sessions.close();
    });

    it('a route reads the data of a pre-filled session, and the session is left as it was', async () => {
      const cookie = await sessions.create({ user: { id: 7, name: 'Ada' }, theme: 'dark' });
      assert.match(cookie, /^ci_session=[0-9a-f]{32}$/);
      const { status, body, response } = await client.request('GET', '/profile', cookie);
      assert.equal(status, 200);
      assert.equal(body, 'Hello Ada');
      const state = await sessions.after(response, cookie);
      assert.equal(state.id, state.previousId);
      assert.equal(state.cookie, cookie);
      assert.equal(state.exists, true);
      assert.deepEqual(state.data, { user: { id: 7, name: 'Ada' }, theme: 'dark' });
      assert.deepEqual([state.regenerated, state.created, state.destroyed], [false, false, false]);
      assertSessionHas(state, 'user', { id: 7, name: 'Ada' });
      assertSessionHas(state, 'user.name', 'Ada');
      assertSessionMissing(state, 'cart');
    });

    it('a request without a session cookie gets no session from a route that stores nothing', async () => {
      const { status, response } = await client.request('GET', '/profile', undefined);
      assert.equal(status, 401);
      const state = await sessions.after(response, undefined);
      assert.equal(state.id, null);
      assert.equal(state.exists, false);
      assert.equal(state.created, false);
    });

    it('pre-filled flashdata is what the route reads, and it is gone after that request', async () => {
      const cookie = await sessions.create({}, { flash: { notice: 'Welcome back' } });
      const first = await client.request('GET', '/notice', cookie);
      assert.equal(first.body, 'Welcome back');
      const state = await sessions.after(first.response, cookie);
      assert.deepEqual(state.flash, {});
      assertSessionMissing(state, 'notice');
      const second = await client.request('GET', '/notice', state.cookie);
      assert.equal(second.body, 'nothing');
    });

    it('flashdata set by a route shows in after().flash, and the next request reads it', async () => {
      const cookie = await sessions.create({ user: { id: 7, name: 'Ada' } });
      const { status, response } = await client.request('POST', '/save', cookie);
      assert.equal(status, 303);
      const state = await sessions.after(response, cookie);
      assert.deepEqual(state.flash, { notice: 'Saved' });
      assertSessionHas(state, 'notice', 'Saved');
      assertSessionHas(state, 'user');
      const next = await client.request('GET', '/notice', state.cookie);
      assert.equal(next.body, 'Saved');
    });

    it('a route that sets data for a client without a session: after().created, with the new ID', async () => {
      const { response } = await client.request('POST', '/save', undefined);
      const state = await sessions.after(response, undefined);
      assert.equal(state.created, true);
      assert.equal(state.regenerated, false);
      assert.equal(state.previousId, null);
      assert.match(state.id ?? '', ID);
      assert.deepEqual(state.flash, { notice: 'Saved' });
    });

    it('a login route that regenerates: after().regenerated, the data followed to the new ID, the old one gone', async () => {
      const cookie = await sessions.create({ cart: ['apple'] });
      const { status, response } = await client.request('POST', '/login', cookie);
      assert.equal(status, 303);
      const state = await sessions.after(response, cookie);
      assert.equal(state.regenerated, true);
      assert.equal(state.created, false);
      assert.equal(state.destroyed, false);
      assert.match(state.id ?? '', ID);
      assert.notEqual(state.id, state.previousId);
      assert.equal(state.cookie, `ci_session=${state.id}`);
      assert.deepEqual(state.data, { cart: ['apple'], user: { id: 7, name: 'Ada' } });
      const old = await sessions.inspect(cookie);
      assert.equal(old.exists, false, 'regenerate(true) deletes the old ID at once');
      const profile = await client.request('GET', '/profile', state.cookie);
      assert.equal(profile.body, 'Hello Ada');
    });

    it('a logout route: after().destroyed, nothing stored, and no cookie for the next request', async () => {
      const cookie = await sessions.create({ user: { id: 7, name: 'Ada' } });
      const { status, response } = await client.request('POST', '/logout', cookie);
      assert.equal(status, 303);
      const state = await sessions.after(response, cookie);
      assert.equal(state.destroyed, true);
      assert.equal(state.exists, false);
      assert.equal(state.id, null);
      assert.equal(state.cookie, undefined);
      assert.deepEqual(state.data, {});
      assertSessionMissing(state, 'user');
      assert.equal((await sessions.inspect(cookie)).exists, false);
    });

    it('the assertions fail with a message naming the key, the values and what is stored', async () => {
      const cookie = await sessions.create({ user: { id: 7, name: 'Ada' } }, { flash: { n: 1 } });
      const { response } = await client.request('GET', '/profile', cookie);
      const state = await sessions.after(response, cookie);
      assert.throws(() => assertSessionHas(state, 'cart'), {
        name: 'AssertionError',
        message:
          'assertSessionHas: expected the session to hold "cart", but the stored session holds "user".',
      });
      assert.throws(() => assertSessionHas(state, 'user', { id: 8, name: 'Ada' }), {
        name: 'AssertionError',
        // node:assert appends its own diff of the two values on a new line.
        message:
          /^assertSessionHas: the session's "user" is \{ id: 7, name: 'Ada' \}, expected \{ id: 8, name: 'Ada' \}\.$/m,
        actual: { id: 7, name: 'Ada' },
        expected: { id: 8, name: 'Ada' },
      });
      assert.throws(() => assertSessionHas(state, 'user.id', '7'), {
        message: /^assertSessionHas: the session's "user\.id" is 7, expected '7'\.$/m,
      });
      assert.throws(() => assertSessionMissing(state, 'user'), {
        name: 'AssertionError',
        message:
          'assertSessionMissing: expected the session not to hold "user", but it holds { id: 7, name: \'Ada\' }.',
      });
      const { response: loggedOut } = await client.request('POST', '/logout', cookie);
      const destroyed = await sessions.after(loggedOut, cookie);
      assert.throws(() => assertSessionHas(destroyed, 'user'), {
        message:
          'assertSessionHas: expected the session to hold "user", but the request destroyed the session, so nothing is stored.',
      });
    });
  });
}

sessionCases('Express (fetch to a listening server)', async (sessions) => {
  const { app, middleware } = expressAppFor(sessions.config);
  const server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await middleware.manager.shutdown();
    },
    async request(method, path, cookie) {
      const response = await fetch(`${url}${path}`, {
        method,
        headers: cookie === undefined ? {} : { cookie },
        redirect: 'manual',
      });
      return { status: response.status, body: await response.text(), response };
    },
  };
});

sessionCases('Fastify (app.inject)', async (sessions) => {
  const app = await fastifyAppFor(sessions.config);
  return {
    close: () => app.close(),
    async request(method, path, cookie) {
      const response = await app.inject({
        method,
        url: path,
        headers: cookie === undefined ? {} : { cookie },
      });
      return { status: response.statusCode, body: response.body, response };
    },
  };
});

describe('Fastify on a listening server, read with fetch', () => {
  it('gives the same snapshot as through app.inject()', async () => {
    const sessions = testSessions();
    const app = await fastifyAppFor(sessions.config);
    await app.listen({ port: 0, host: '127.0.0.1' });
    try {
      const { port } = app.server.address() as AddressInfo;
      const cookie = await sessions.create({ cart: ['apple'] });
      const response = await fetch(`http://127.0.0.1:${port}/login`, {
        method: 'POST',
        headers: { cookie },
        redirect: 'manual',
      });
      const state: SessionSnapshot = await sessions.after(response, cookie);
      assert.equal(state.regenerated, true);
      assertSessionHas(state, 'cart', ['apple']);
      assertSessionHas(state, 'user.id', 7);
    } finally {
      app.server.closeAllConnections();
      await app.close();
    }
  });
});
