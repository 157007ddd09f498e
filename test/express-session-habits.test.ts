/**
 * express-session habits on keepsake, through real HTTP on Express: regenerate(cb), destroy(cb),
 * save(cb), reload(cb), touch() and req.sessionID either work as express-session users expect or
 * fail with an error that names keepsake's equivalent — and no request ever hangs (every fetch is
 * bounded by AbortSignal.timeout). The login and logout routes are express-session's README example.
 */
import assert from 'node:assert/strict';
import { IncomingMessage } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import express from 'express';
import { type SessionMiddleware, session } from '../src/adapters/express.js';
import { SessionError } from '../src/errors.js';
import { CookieJar } from './helpers/cookie-jar.js';
import { RecordingDriver } from './helpers/recording-driver.js';

const ID = /^[0-9a-f]{32}$/;
const COOKIE = 'ci_session';

/** What a callback was given, as JSON can carry it: null, or the error's code and message. */
function describeArgument(error: unknown): { code: string; message: string } | null | string {
  if (error === null) return null;
  if (error instanceof SessionError) return { code: error.code, message: error.message };
  return `not null and not a SessionError: ${String(error)}`;
}

interface Running {
  url: string;
  close(): Promise<void>;
}

async function listen(app: express.Express, cleanUp?: () => Promise<void>): Promise<Running> {
  const server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await cleanUp?.();
    },
  };
}

const store = new RecordingDriver();

/** The app: keepsake with the array driver, routes written the express-session way. */
function keepsakeApp(): { app: express.Express; middleware: SessionMiddleware } {
  const app = express();
  const middleware = session({ driver: store.driver, gcProbability: 0 });
  app.use(middleware);

  app.get('/set', (req, res) => {
    req.session.set('user', String(req.query.user));
    req.session.set('cart', ['apple']);
    res.json({ id: req.session.id });
  });

  app.get('/whoami', (req, res) => {
    res.json({
      user: req.session.get('user'),
      cart: req.session.get('cart'),
      after: req.session.get('after'),
      closed: req.session.get('closed'),
      id: req.session.id,
      sessionID: req.sessionID,
      ownProperty: Object.hasOwn(req, 'sessionID'),
    });
  });

  // express-session's README: regenerate against session fixation, then save before redirecting.
  app.post('/login', (req, res, next) => {
    const idBefore = req.sessionID;
    req.session.regenerate((regenerateError) => {
      if (regenerateError) return next(regenerateError);
      const idAfterRegenerate = req.sessionID;
      req.session.set('user', 'ada');
      req.session.save((saveError) => {
        if (saveError) return next(saveError);
        res.set(
          'X-Callbacks',
          JSON.stringify({
            regenerate: describeArgument(regenerateError),
            save: describeArgument(saveError),
            idBefore,
            idAfterRegenerate,
          }),
        );
        res.redirect('/whoami');
      });
    });
  });

  // express-session's README: clear the user and save, then regenerate.
  app.post('/logout', (req, res, next) => {
    req.session.set('user', null);
    req.session.save((saveError) => {
      if (saveError) return next(saveError);
      req.session.regenerate((regenerateError) => {
        if (regenerateError) return next(regenerateError);
        res.set(
          'X-Callbacks',
          JSON.stringify({
            save: describeArgument(saveError),
            regenerate: describeArgument(regenerateError),
          }),
        );
        res.redirect('/whoami');
      });
    });
  });

  // keepsake's own form, unchanged: CodeIgniter's regenerate keeps the data.
  app.post('/rotate', async (req, res) => {
    const idBefore = req.sessionID;
    await req.session.regenerate();
    res.json({ idBefore, idAfter: req.sessionID, user: req.session.get('user') });
  });

  app.post('/destroy', (req, res) => {
    req.session.destroy((error) => {
      // A second destroy in the same request: the error reaches the callback.
      req.session.destroy((again) => {
        res.json({
          first: describeArgument(error),
          second: describeArgument(again),
          data: req.session.get(),
        });
      });
    });
  });

  app.post('/destroy-promise', async (req, res) => {
    await req.session.destroy();
    res.json({ data: req.session.get() });
  });

  app.post('/save-twice', (req, res) => {
    req.session.set('count', Number(req.session.get('count') ?? 0) + 1);
    req.session.save((first) => {
      req.session.set('after', 'first save');
      void req.session.save().then(() => {
        req.session.save((second) => {
          res.json({ first: describeArgument(first), second: describeArgument(second) });
        });
      });
    });
  });

  app.post('/save-unchanged', (req, res) => {
    req.session.save((error) => res.json({ error: describeArgument(error) }));
  });

  app.post('/save-after-close', async (req, res) => {
    req.session.set('closed', true);
    await req.session.close();
    req.session.save((error) => res.json({ error: describeArgument(error) }));
  });

  app.post('/save-after-destroy', async (req, res) => {
    await req.session.destroy();
    req.session.save((error) => res.json({ error: describeArgument(error) }));
  });

  app.post('/reload-callback', (req, res) => {
    req.session.set('unsaved', 'kept');
    req.session.reload((error) => {
      res.status(500).json({ error: describeArgument(error), unsaved: req.session.get('unsaved') });
    });
  });

  app.post('/reload-throws', (req, res) => {
    req.session.reload();
    res.send('unreachable');
  });

  app.post('/touch', (req, res) => {
    const touched = req.session.touch();
    touched.set('touched', true);
    res.json({ same: touched === req.session });
  });

  app.post('/regenerate-after-close', async (req, res) => {
    req.session.set('user', 'kept');
    await req.session.close();
    req.session.regenerate((error) =>
      res.json({ error: describeArgument(error), user: req.session.get('user') }),
    );
  });

  app.post('/regenerate-after-headers', (req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    req.session.regenerate((error) => res.end(JSON.stringify({ error: describeArgument(error) })));
  });

  // A mounted sub-app: Express gives its requests the sub-app's own request prototype.
  const admin = express();
  admin.get('/whoami', (req, res) => {
    res.json({ sessionID: req.sessionID, id: req.session.id });
  });
  app.use('/admin', admin);

  app.use(
    (error: Error, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
      res.status(error instanceof SessionError ? error.status : 500).json({
        error: describeArgument(error),
      });
    },
  );
  return { app, middleware };
}

describe('express-session habits on keepsake (Express, array driver)', () => {
  let running: Running | undefined;
  before(async () => {
    const { app, middleware } = keepsakeApp();
    running = await listen(app, () => middleware.manager.shutdown());
  });
  after(() => running?.close());

  const url = (path: string) => {
    if (running === undefined) throw new Error('the app did not start');
    return `${running.url}${path}`;
  };
  /** A request that can never hang the test: it fails after 5 s instead. */
  const send = (jar: CookieJar, path: string, method = 'GET') =>
    jar.fetch(url(path), { method, signal: AbortSignal.timeout(5000) });
  const json = async (jar: CookieJar, path: string, method = 'GET') => {
    const response = await send(jar, path, method);
    return { status: response.status, body: await response.json() };
  };
  const callbacksOf = (response: Response) => JSON.parse(response.headers.get('X-Callbacks') ?? '');

  async function loggedInAs(user: string): Promise<{ jar: CookieJar; id: string }> {
    const jar = new CookieJar();
    const { body } = await json(jar, `/set?user=${user}`);
    assert.match(body.id, ID);
    assert.equal(jar.get(COOKIE), body.id);
    return { jar, id: body.id };
  }

  it('regenerate(cb): a new ID, an empty session, the old ID deleted at once, cb(null)', async () => {
    const { jar, id } = await loggedInAs('guest');
    const login = await send(jar, '/login', 'POST');
    assert.equal(login.status, 302);
    assert.equal(login.headers.get('location'), '/whoami');
    const callbacks = callbacksOf(login);
    assert.deepEqual(
      { regenerate: callbacks.regenerate, save: callbacks.save },
      { regenerate: null, save: null },
    );
    assert.equal(callbacks.idBefore, id);
    assert.match(callbacks.idAfterRegenerate, ID);
    assert.notEqual(callbacks.idAfterRegenerate, id);
    assert.equal(jar.get(COOKIE), callbacks.idAfterRegenerate, 'the new ID is sent as the cookie');

    const { body } = await json(jar, '/whoami');
    assert.equal(body.user, 'ada');
    assert.equal(body.cart, null, 'data from before regenerate(cb) is gone, as in express-session');
    assert.equal(body.id, callbacks.idAfterRegenerate);

    const stale = new CookieJar();
    stale.set(COOKIE, id);
    const old = await json(stale, '/whoami');
    assert.equal(old.body.user, null, 'the old ID leads nowhere: no grace window');
    assert.notEqual(old.body.id, id);
  });

  it('regenerate() and regenerate(true) keep CodeIgniter semantics: the data moves to the new ID', async () => {
    const { jar, id } = await loggedInAs('grace');
    const { body } = await json(jar, '/rotate', 'POST');
    assert.equal(body.idBefore, id);
    assert.notEqual(body.idAfter, id);
    assert.equal(body.user, 'grace');
    assert.equal(jar.get(COOKIE), body.idAfter);
    // The old cookie still leads to the new session for the grace window.
    const stale = new CookieJar();
    stale.set(COOKIE, id);
    assert.equal((await json(stale, '/whoami')).body.user, 'grace');
  });

  it("logout the README's way: save(cb), then regenerate(cb); the user is gone", async () => {
    const { jar, id } = await loggedInAs('bob');
    const logout = await send(jar, '/logout', 'POST');
    assert.equal(logout.status, 302);
    assert.deepEqual(callbacksOf(logout), { save: null, regenerate: null });
    const newId = jar.get(COOKIE);
    assert.match(newId ?? '', ID);
    assert.notEqual(newId, id);
    const { body } = await json(jar, '/whoami');
    assert.equal(body.user, null);
    assert.equal(body.cart, null);
    const stale = new CookieJar();
    stale.set(COOKIE, id);
    assert.equal((await json(stale, '/whoami')).body.user, null);
  });

  it('destroy(cb): cb(null) after destroying, the deletion cookie, the old ID gone; a second destroy reports to its callback', async () => {
    const { jar, id } = await loggedInAs('carol');
    const response = await send(jar, '/destroy', 'POST');
    assert.equal(response.status, 200);
    const body = await response.json();
    assert.equal(body.first, null);
    assert.equal(body.second.code, 'KEEPSAKE_CLOSED');
    assert.match(body.second.message, /destroy\(\) already deleted it/);
    assert.deepEqual(body.data, {});
    assert.ok(
      response.headers.getSetCookie().some((line) => /^ci_session=;.*Max-Age=0/i.test(line)),
      response.headers.getSetCookie().join('\n'),
    );
    assert.equal(jar.get(COOKIE), undefined);
    const stale = new CookieJar();
    stale.set(COOKIE, id);
    assert.equal((await json(stale, '/whoami')).body.user, null);
  });

  it('destroy() without a callback still returns a promise', async () => {
    const { jar } = await loggedInAs('dave');
    const { status, body } = await json(jar, '/destroy-promise', 'POST');
    assert.equal(status, 200);
    assert.deepEqual(body.data, {});
    assert.equal(jar.get(COOKIE), undefined);
  });

  it('save(cb) and save(): called back with null; the request still writes once', async () => {
    const { jar } = await loggedInAs('erin');
    const writes = store.count('writeAndUnlock');
    const touches = store.count('touchAndUnlock');
    const { status, body } = await json(jar, '/save-twice', 'POST');
    assert.equal(status, 200);
    assert.deepEqual(body, { first: null, second: null });
    assert.equal(store.count('writeAndUnlock') - writes, 1, 'one write for the whole request');
    assert.equal(store.count('touchAndUnlock') - touches, 0);
    const { body: stored } = await json(jar, '/whoami');
    assert.equal(stored.user, 'erin');
    // A change made after save(cb) called back is saved too: saving happens once, at the end.
    assert.equal(stored.after, 'first save');
  });

  it('save(cb) on an unchanged session writes nothing (a touch waits for touchAfter)', async () => {
    const { jar } = await loggedInAs('frank');
    const writes = store.count('writeAndUnlock');
    const touches = store.count('touchAndUnlock');
    const { body } = await json(jar, '/save-unchanged', 'POST');
    assert.deepEqual(body, { error: null });
    assert.equal(store.count('writeAndUnlock') - writes, 0);
    assert.equal(store.count('touchAndUnlock') - touches, 0);
  });

  it('save(cb) after close() or destroy() calls back with null: nothing is left to save', async () => {
    const { jar } = await loggedInAs('gina');
    assert.deepEqual((await json(jar, '/save-after-close', 'POST')).body, { error: null });
    const { body } = await json(jar, '/whoami');
    assert.equal(body.closed, true, 'close() saved the change');
    assert.deepEqual((await json(jar, '/save-after-destroy', 'POST')).body, { error: null });
    assert.equal(jar.get(COOKIE), undefined, 'save() did not resurrect the destroyed session');
  });

  it('reload(cb) passes a SessionUnsupportedError naming close() and readOnly; the data stays', async () => {
    const { jar } = await loggedInAs('hank');
    const { status, body } = await json(jar, '/reload-callback', 'POST');
    assert.equal(status, 500);
    assert.equal(body.error.code, 'KEEPSAKE_UNSUPPORTED');
    assert.match(body.error.message, /session\.reload\(\) is not supported/);
    assert.match(body.error.message, /session\.close\(\)/);
    assert.match(body.error.message, /readOnly/);
    assert.equal(body.unsaved, 'kept');
  });

  it('reload() without a callback throws it, and the error handler answers', async () => {
    const { jar } = await loggedInAs('iris');
    const { status, body } = await json(jar, '/reload-throws', 'POST');
    assert.equal(status, 500);
    assert.equal(body.error.code, 'KEEPSAKE_UNSUPPORTED');
    assert.match(body.error.message, /session\.reload\(\) is not supported/);
    // The failed request released the lock: the next one is served.
    assert.equal((await json(jar, '/whoami')).body.user, 'iris');
  });

  it('touch() returns the session and changes nothing else', async () => {
    const { jar } = await loggedInAs('jack');
    const { status, body } = await json(jar, '/touch', 'POST');
    assert.equal(status, 200);
    assert.deepEqual(body, { same: true });
  });

  it('regenerate(cb) after close() or after the headers went out reports the error to cb', async () => {
    const { jar } = await loggedInAs('kim');
    const closed = await json(jar, '/regenerate-after-close', 'POST');
    assert.equal(closed.body.error.code, 'KEEPSAKE_CLOSED');
    assert.equal(closed.body.user, 'kept', 'a closed session is not emptied');

    const late = await json(jar, '/regenerate-after-headers', 'POST');
    assert.equal(late.status, 200);
    assert.equal(late.body.error.code, 'KEEPSAKE_HEADERS_SENT');
    assert.match(late.body.error.message, /before writing the response/);
    // As in express-session, the old session's data is dropped even though the ID could not change.
    assert.equal((await json(jar, '/whoami')).body.user, null);
  });

  it('req.sessionID is the session ID, from a getter (no per-request property), in sub-apps too', async () => {
    const { jar, id } = await loggedInAs('lee');
    const { body } = await json(jar, '/whoami');
    assert.equal(body.sessionID, id);
    assert.equal(body.id, id);
    assert.equal(body.ownProperty, false);
    const sub = await json(jar, '/admin/whoami');
    assert.deepEqual(sub.body, { sessionID: id, id });
    assert.equal(
      'sessionID' in IncomingMessage.prototype,
      false,
      "node's IncomingMessage is left alone",
    );
  });
});

describe('express-session still works beside keepsake in the same process', () => {
  let running: Running | undefined;
  let keepsake: Running | undefined;
  before(async () => {
    // keepsake defines its getter first (Express's request prototype is shared by every app).
    const { app, middleware } = keepsakeApp();
    keepsake = await listen(app, () => middleware.manager.shutdown());
    await new CookieJar().fetch(`${keepsake.url}/whoami`, { signal: AbortSignal.timeout(5000) });

    const require = createRequire(import.meta.url);
    const expressSession = require('express-session') as (
      options: object,
    ) => express.RequestHandler;
    const other = express();
    other.use(expressSession({ secret: 'test', resave: false, saveUninitialized: false }));
    other.get('/views', (req, res) => {
      const own = (req as unknown as { session: { views?: number } }).session;
      own.views = (own.views ?? 0) + 1;
      res.json({ views: own.views, sessionID: req.sessionID });
    });
    running = await listen(other);
  });
  after(async () => {
    await running?.close();
    await keepsake?.close();
  });

  it("express-session's req.sessionID assignments work as before", async () => {
    const jar = new CookieJar();
    const get = async () => {
      const response = await jar.fetch(`${running?.url}/views`, {
        signal: AbortSignal.timeout(5000),
      });
      assert.equal(response.status, 200);
      return response.json();
    };
    const first = await get();
    const second = await get();
    assert.equal(first.views, 1);
    assert.equal(second.views, 2);
    assert.equal(typeof first.sessionID, 'string');
    assert.ok(first.sessionID.length > 10);
    assert.equal(second.sessionID, first.sessionID);
    assert.match(jar.get('connect.sid') ?? '', new RegExp(`^s%3A${first.sessionID}\\.`));
  });
});
