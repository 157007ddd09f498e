import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import express from 'express';
import { session } from '../../src/adapters/express.js';
import { CookieJar } from '../helpers/cookie-jar.js';
import { RecordingDriver } from '../helpers/recording-driver.js';

async function listen(app: express.Express): Promise<{ server: Server; url: string }> {
  const server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

async function close(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

/**
 * keepsake hooks writeHead/end once on Express's shared response prototype: mounted sub-apps,
 * routes before the middleware and other apps of the process must all still behave.
 */
describe('Express: the response hook shared by every app', () => {
  const store = new RecordingDriver();
  const middleware = session({ driver: store.driver, readOnly: (req) => req.url === '/peek' });
  let withSession: { server: Server; url: string };
  let without: { server: Server; url: string };

  before(async () => {
    const app = express();
    app.get('/early', (_req, res) => {
      res.send('before the session');
    });
    app.use(middleware);
    const sub = express();
    sub.get('/set', (req, res) => {
      req.session.set('name', String(req.query.name));
      res.redirect('/peek');
    });
    app.use('/sub', sub);
    app.get('/peek', (req, res) => {
      res.json({ name: req.session.get('name') });
    });
    withSession = await listen(app);
    const plain = express();
    plain.get('/', (_req, res) => {
      res.send('no session here');
    });
    without = await listen(plain);
  });
  after(async () => {
    await close(withSession.server);
    await close(without.server);
    await middleware.manager.shutdown();
  });

  it("a mounted sub-app's redirect leaves only after the data is stored", async () => {
    const jar = new CookieJar();
    await jar.fetch(`${withSession.url}/sub/set?name=first`);
    store.writeDelayMs = 150;
    try {
      const redirect = await jar.fetch(`${withSession.url}/sub/set?name=second`);
      assert.equal(redirect.status, 302);
      assert.equal(redirect.headers.get('cache-control'), 'no-store, no-cache, must-revalidate');
      await redirect.arrayBuffer();
    } finally {
      store.writeDelayMs = 0;
    }
    // A read-only request takes no lock: it sees the store as it is right now.
    assert.equal((await (await jar.fetch(`${withSession.url}/peek`)).json()).name, 'second');
  });

  it('a route before the middleware, and an app without keepsake, answer untouched', async () => {
    for (const url of [`${withSession.url}/early`, `${without.url}/`]) {
      const response = await fetch(url);
      assert.equal(response.status, 200);
      assert.deepEqual(response.headers.getSetCookie(), []);
      assert.equal(response.headers.get('cache-control'), null);
      assert.match(await response.text(), /before the session|no session here/);
    }
  });
});
