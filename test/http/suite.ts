/**
 * The HTTP-level suite every adapter runs: the same routes (framework-neutral, mapped onto each
 * framework by its factory in test/helpers/apps/) and the same assertions.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { FakeClock } from '../../src/clock.js';
import type { AppFactory, AppOptions, Routes, RunningApp } from '../helpers/apps/types.js';
import { CookieJar } from '../helpers/cookie-jar.js';
import { RecordingDriver } from '../helpers/recording-driver.js';
import { httpsGet, selfSignedCertificate } from '../helpers/tls.js';

const ID = /^[0-9a-f]{32}$/;
/** The date PHP's session_start() sends as Expires for a page that must not be cached. */
const PHP_PAST = 'Thu, 19 Nov 1981 08:52:00 GMT';
const NOCACHE = {
  expires: PHP_PAST,
  cacheControl: 'no-store, no-cache, must-revalidate',
  pragma: 'no-cache',
};
const NO_CACHE_HEADERS = { expires: null, cacheControl: null, pragma: null };

function cacheHeadersOf(response: Response) {
  return {
    expires: response.headers.get('expires'),
    cacheControl: response.headers.get('cache-control'),
    pragma: response.headers.get('pragma'),
  };
}

/** A logger that keeps the warnings. */
function warningsLogger() {
  const warnings: string[] = [];
  return {
    warnings,
    logger: { debug() {}, warn: (message: string) => warnings.push(message), error() {} },
  };
}
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Deferred {
  promise: Promise<void>;
  resolve(): void;
}

function deferred(): Deferred {
  let resolve: () => void = () => {};
  const promise = new Promise<void>((done) => {
    resolve = done;
  });
  return { promise, resolve };
}

/** Starts an app per describe block and closes it afterwards. */
function serve(factory: AppFactory, options: () => AppOptions, routes: Routes): () => RunningApp {
  let running: RunningApp | undefined;
  before(async () => {
    running = await factory.start(options(), routes);
  });
  after(() => running?.close());
  return () => {
    if (running === undefined) throw new Error('the app did not start');
    return running;
  };
}

export function runHttpSuite(factory: AppFactory): void {
  const name = factory.framework;

  describe(`${name}: flashdata and tempdata`, () => {
    const clock = new FakeClock();
    const app = serve(
      factory,
      () => ({ session: { driver: 'array', clock: clock.now, timeToUpdate: 0 } }),
      {
        '/flash': ({ session }) => {
          session.setFlashdata('notice', 'saved');
          return 'ok';
        },
        '/temp': ({ session }) => {
          session.setTempdata('coupon', 'SAVE10', 60);
          return 'ok';
        },
        '/read': ({ session }) => ({
          notice: session.getFlashdata('notice'),
          coupon: session.getTempdata('coupon'),
        }),
      },
    );

    it('keeps flashdata for exactly the next request', async () => {
      const jar = new CookieJar();
      await jar.fetch(`${app().url}/flash`);
      assert.equal((await (await jar.fetch(`${app().url}/read`)).json()).notice, 'saved');
      assert.equal((await (await jar.fetch(`${app().url}/read`)).json()).notice, null);
    });

    it('keeps tempdata until its ttl passes, across any number of requests', async () => {
      const jar = new CookieJar();
      await jar.fetch(`${app().url}/temp`);
      for (let request = 0; request < 3; request += 1) {
        clock.advance(25);
        const expected = request < 2 ? 'SAVE10' : null;
        assert.equal((await (await jar.fetch(`${app().url}/read`)).json()).coupon, expected);
      }
    });
  });

  describe(`${name}: cookies, strict mode and destroy`, () => {
    const app = serve(factory, () => ({ session: { driver: 'array' } }), {
      '/set': ({ session }) => {
        session.set('name', 'ada');
        return 'ok';
      },
      '/get': ({ session }) => ({ id: session.id, name: session.get('name') }),
      '/destroy': async ({ session }) => {
        await session.destroy();
        return 'bye';
      },
      '/own-cookie': ({ session, setCookie }) => {
        session.set('name', 'grace');
        setCookie('theme=dark; Path=/');
        return 'ok';
      },
    });

    it('sends a new HttpOnly cookie once, then none while the ID is unchanged', async () => {
      const jar = new CookieJar();
      const first = await jar.fetch(`${app().url}/set`);
      const [cookie] = first.headers.getSetCookie();
      assert.match(
        cookie ?? '',
        /^ci_session=[0-9a-f]{32}; Max-Age=7200; Expires=.+; Path=\/; HttpOnly; SameSite=Lax$/,
      );
      const second = await jar.fetch(`${app().url}/get`);
      assert.deepEqual(second.headers.getSetCookie(), []);
      assert.equal((await second.json()).name, 'ada');
    });

    it("keeps the app's own Set-Cookie next to the session cookie", async () => {
      const jar = new CookieJar();
      const response = await jar.fetch(`${app().url}/own-cookie`);
      assert.equal(response.status, 200);
      const cookies = response.headers.getSetCookie();
      assert.equal(cookies.length, 2);
      assert.ok(cookies.includes('theme=dark; Path=/'), cookies.join(' | '));
      assert.ok(cookies.some((line) => /^ci_session=[0-9a-f]{32};/.test(line)));
      assert.equal((await (await jar.fetch(`${app().url}/get`)).json()).name, 'grace');
      assert.equal(jar.get('theme'), 'dark');
    });

    it('never adopts an ID the client chose (strict mode)', async () => {
      const jar = new CookieJar();
      const chosen = 'a'.repeat(32);
      jar.set('ci_session', chosen);
      await jar.fetch(`${app().url}/set`);
      const body = await (await jar.fetch(`${app().url}/get`)).json();
      assert.match(body.id, ID);
      assert.notEqual(body.id, chosen);
      assert.equal(jar.get('ci_session'), body.id);
      assert.equal(body.name, 'ada');
    });

    it('a visitor who stores nothing gets no cookie, and the first set() creates the session', async () => {
      const jar = new CookieJar();
      const visit = await jar.fetch(`${app().url}/get`);
      assert.deepEqual(visit.headers.getSetCookie(), []);
      assert.equal((await visit.json()).name, null);
      const stored = await jar.fetch(`${app().url}/set`);
      assert.match(stored.headers.getSetCookie()[0] ?? '', /^ci_session=[0-9a-f]{32};/);
      assert.equal((await (await jar.fetch(`${app().url}/get`)).json()).name, 'ada');
    });

    it('destroy deletes the data and sends a deletion cookie', async () => {
      const jar = new CookieJar();
      await jar.fetch(`${app().url}/set`);
      const oldId = jar.get('ci_session');
      const response = await jar.fetch(`${app().url}/destroy`);
      assert.match(
        response.headers.getSetCookie()[0] ?? '',
        /^ci_session=; Max-Age=0; Expires=Thu, 01 Jan 1970/,
      );
      assert.equal(jar.get('ci_session'), undefined);
      const stale = new CookieJar();
      stale.set('ci_session', oldId ?? '');
      const body = await (await stale.fetch(`${app().url}/get`)).json();
      assert.equal(body.name, null);
      assert.notEqual(body.id, oldId);
    });
  });

  describe(`${name}: automatic regeneration`, () => {
    const clock = new FakeClock();
    let releaseSlow: () => void = () => {};
    const app = serve(
      factory,
      () => ({ session: { driver: 'array', clock: clock.now, timeToUpdate: 300 } }),
      {
        '/inc': ({ session }) => {
          const count = Number(session.get('count') ?? 0) + 1;
          session.set('count', count);
          return { count, id: session.id };
        },
        '/slow-inc': async ({ session }) => {
          const count = Number(session.get('count') ?? 0) + 1;
          await new Promise<void>((resolve) => {
            releaseSlow = resolve;
          });
          session.set('count', count);
          return { count, id: session.id };
        },
      },
    );

    it('rotates the ID after timeToUpdate and loses nothing from a request still carrying the old cookie', async () => {
      const jar = new CookieJar();
      const first = await (await jar.fetch(`${app().url}/inc`)).json();
      const oldId = first.id;
      clock.advance(301);
      const rotated = await jar.fetch(`${app().url}/inc`);
      const rotatedBody = await rotated.json();
      assert.notEqual(rotatedBody.id, oldId);
      assert.equal(rotatedBody.count, 2);
      assert.equal(jar.get('ci_session'), rotatedBody.id);
      // A request sent before the new cookie arrived (old ID) reaches the same data.
      const inFlight = new CookieJar();
      inFlight.set('ci_session', oldId);
      const late = await (await inFlight.fetch(`${app().url}/inc`)).json();
      assert.equal(late.count, 3);
      assert.equal(late.id, rotatedBody.id);
      assert.equal(inFlight.get('ci_session'), rotatedBody.id);
      const final = await (await jar.fetch(`${app().url}/inc`)).json();
      assert.equal(final.count, 4);
    });

    it('a slow request holding the lock when rotation is due does not lose its write', async () => {
      const jar = new CookieJar();
      await jar.fetch(`${app().url}/inc`);
      clock.advance(301);
      const slow = jar.fetch(`${app().url}/slow-inc`);
      await pause(50);
      const queued = jar.fetch(`${app().url}/inc`);
      await pause(50);
      releaseSlow();
      const results = await Promise.all(
        [slow, queued].map(async (pending) => (await pending).json()),
      );
      assert.deepEqual(results.map((result) => result.count).sort(), [2, 3]);
      assert.equal(results[0].id, results[1].id);
    });
  });

  describe(`${name}: AJAX requests (CodeIgniter's always-created sessions)`, () => {
    const clock = new FakeClock();
    const app = serve(
      factory,
      () => ({ session: { driver: 'array', clock: clock.now, createEmptySessions: true } }),
      { '/id': ({ session }) => ({ id: session.id }) },
    );

    it('never regenerates on AJAX, and refreshes the cookie on every AJAX response', async () => {
      const jar = new CookieJar();
      const { id } = await (await jar.fetch(`${app().url}/id`)).json();
      clock.advance(10_000 - 7200);
      const ajax = await jar.fetch(`${app().url}/id`, {
        headers: { 'X-Requested-With': 'xmlhttprequest' },
      });
      assert.equal((await ajax.json()).id, id);
      assert.match(
        ajax.headers.getSetCookie()[0] ?? '',
        new RegExp(`^ci_session=${id}; Max-Age=7200`),
      );
      const normal = await jar.fetch(`${app().url}/id`);
      assert.notEqual((await normal.json()).id, id);
    });
  });

  describe(`${name}: matchIP`, () => {
    const app = serve(
      factory,
      () => ({ session: { driver: 'array', matchIP: true }, host: '::' }),
      {
        '/set': ({ session }) => {
          session.set('who', 'v4');
          return 'ok';
        },
        '/get': ({ session }) => ({ who: session.get('who') }),
      },
    );

    it('a session made from 127.0.0.1 is not found from ::1', async () => {
      const port = new URL(app().url).port;
      const jar = new CookieJar();
      await jar.fetch(`http://127.0.0.1:${port}/set`);
      assert.equal((await (await jar.fetch(`http://127.0.0.1:${port}/get`)).json()).who, 'v4');
      const fromV6 = new CookieJar();
      fromV6.set('ci_session', jar.get('ci_session') ?? '');
      assert.equal((await (await fromV6.fetch(`http://[::1]:${port}/get`)).json()).who, null);
      await fromV6.fetch(`http://[::1]:${port}/set`);
      assert.notEqual(fromV6.get('ci_session'), jar.get('ci_session'), 'a new session, a new ID');
    });
  });

  describe(`${name}: concurrency`, () => {
    const app = serve(factory, () => ({ session: { driver: 'array' } }), {
      '/inc': async ({ session }) => {
        const count = Number(session.get('count') ?? 0);
        await pause(Math.random() * 2);
        session.set('count', count + 1);
        return { count: count + 1 };
      },
      '/count': ({ session }) => ({ count: session.get('count') }),
    });

    it('200 concurrent read-modify-write requests on one session add exactly 200', async () => {
      const jar = new CookieJar();
      await jar.fetch(`${app().url}/inc`);
      const cookie = jar.header() ?? '';
      const responses = await Promise.all(
        Array.from({ length: 200 }, () => fetch(`${app().url}/inc`, { headers: { cookie } })),
      );
      const counts = await Promise.all(
        responses.map(async (response) => (await response.json()).count),
      );
      assert.deepEqual(
        counts.sort((left, right) => left - right),
        Array.from({ length: 200 }, (_, index) => index + 2),
      );
      assert.equal((await (await jar.fetch(`${app().url}/count`)).json()).count, 201);
    });
  });

  describe(`${name}: locks under failure`, () => {
    let holding = deferred();
    let release = deferred();
    const app = serve(
      factory,
      () => ({ session: { driver: 'array', lockWait: 300 }, readOnlyPaths: ['/peek'] }),
      {
        '/set': ({ session }) => {
          session.set('name', 'ada');
          return 'ok';
        },
        '/get': ({ session }) => ({ name: session.get('name') }),
        '/peek': ({ session }) => ({ name: session.get('name') }),
        '/boom': ({ session }) => {
          session.set('name', 'boom');
          throw new Error('the handler failed');
        },
        '/hold': async () => {
          holding.resolve();
          await release.promise;
          return 'released';
        },
      },
    );

    it('a handler that throws answers 500 and still releases the lock', async () => {
      const jar = new CookieJar();
      await jar.fetch(`${app().url}/set`);
      const failed = await jar.fetch(`${app().url}/boom`);
      assert.equal(failed.status, 500);
      await failed.arrayBuffer();
      // A lock left behind would make this wait lockWait (300 ms) and answer 503.
      const next = await jar.fetch(`${app().url}/get`);
      assert.equal(next.status, 200);
      // As in PHP, what the failed request changed is saved.
      assert.equal((await next.json()).name, 'boom');
    });

    it('answers 503 when the lock is not released within lockWait, and serves read-only routes meanwhile', async () => {
      holding = deferred();
      release = deferred();
      const jar = new CookieJar();
      await jar.fetch(`${app().url}/set`);
      const held = jar.fetch(`${app().url}/hold`);
      await holding.promise;
      try {
        const blocked = await jar.fetch(`${app().url}/get`);
        assert.equal(blocked.status, 503);
        assert.match(await blocked.text(), /locked by another request/);
        const peek = await jar.fetch(`${app().url}/peek`);
        assert.equal(peek.status, 200);
        assert.equal((await peek.json()).name, 'ada');
      } finally {
        release.resolve();
      }
      const holder = await held;
      assert.equal(holder.status, 200);
      assert.equal(await holder.text(), 'released');
      const after = await jar.fetch(`${app().url}/get`);
      assert.equal(after.status, 200);
      assert.equal((await after.json()).name, 'ada');
    });
  });

  describe(`${name}: saving and store failures`, () => {
    const store = new RecordingDriver();
    const app = serve(
      factory,
      () => ({ session: { driver: store.driver, timeToUpdate: 0 }, readOnlyPaths: ['/peek'] }),
      {
        '/set': ({ session, query }) => {
          session.set('name', query.get('name'));
          return 'ok';
        },
        '/peek': ({ session }) => ({ name: session.get('name') }),
      },
    );

    it('the data is stored before the response reaches the client', async () => {
      const jar = new CookieJar();
      await jar.fetch(`${app().url}/set?name=first`);
      store.writeDelayMs = 150;
      try {
        const saved = await jar.fetch(`${app().url}/set?name=second`);
        assert.equal(saved.status, 200);
        await saved.arrayBuffer();
      } finally {
        store.writeDelayMs = 0;
      }
      // A read-only request takes no lock: it sees the store as it is right now.
      assert.equal((await (await jar.fetch(`${app().url}/peek`)).json()).name, 'second');
    });

    it('answers 503 when the store fails to read or write, and recovers when it is back', async () => {
      const jar = new CookieJar();
      await jar.fetch(`${app().url}/set?name=before`);
      store.failReads = new Error('connection refused');
      try {
        const reading = await jar.fetch(`${app().url}/set?name=lost`);
        assert.equal(reading.status, 503);
        assert.match(await reading.text(), /session store failed/);
      } finally {
        store.failReads = undefined;
      }
      store.failWrites = new Error('connection reset');
      try {
        const writing = await jar.fetch(`${app().url}/set?name=lost`);
        assert.equal(writing.status, 503);
        assert.match(await writing.text(), /session store failed/);
      } finally {
        store.failWrites = undefined;
      }
      const back = await jar.fetch(`${app().url}/set?name=after`);
      assert.equal(back.status, 200);
      assert.equal((await (await jar.fetch(`${app().url}/peek`)).json()).name, 'after');
    });
  });

  describe(`${name}: cache headers (PHP's session.cache_limiter)`, () => {
    const app = serve(factory, () => ({ session: { driver: 'array' } }), {
      '/set': ({ session }) => {
        session.set('name', 'ada');
        return 'ok';
      },
      '/get': ({ session }) => ({ name: session.get('name') }),
      '/own-cache-control': ({ session, setHeader }) => {
        session.set('name', 'cached');
        setHeader('Cache-Control', 'private, max-age=60');
        return 'ok';
      },
      '/destroy': async ({ session }) => {
        await session.destroy();
        return 'bye';
      },
    });

    it('sends the nocache headers with a new session and with an existing one', async () => {
      const jar = new CookieJar();
      const created = await jar.fetch(`${app().url}/set`);
      assert.equal(created.status, 200);
      assert.deepEqual(cacheHeadersOf(created), NOCACHE);
      const existing = await jar.fetch(`${app().url}/get`);
      assert.equal((await existing.json()).name, 'ada');
      assert.deepEqual(cacheHeadersOf(existing), NOCACHE);
    });

    it('sends no cache headers to a visitor who stores nothing', async () => {
      const visit = await fetch(`${app().url}/get`);
      assert.deepEqual(visit.headers.getSetCookie(), []);
      assert.deepEqual(cacheHeadersOf(visit), NO_CACHE_HEADERS);
      await visit.arrayBuffer();
    });

    it("keeps the app's own Cache-Control and adds no Expires or Pragma", async () => {
      const jar = new CookieJar();
      const response = await jar.fetch(`${app().url}/own-cache-control`);
      assert.equal(response.status, 200);
      assert.match(response.headers.getSetCookie()[0] ?? '', /^ci_session=[0-9a-f]{32};/);
      assert.deepEqual(cacheHeadersOf(response), {
        expires: null,
        cacheControl: 'private, max-age=60',
        pragma: null,
      });
      assert.deepEqual(cacheHeadersOf(await jar.fetch(`${app().url}/get`)), NOCACHE);
    });

    it('sends them with the deletion cookie of a destroyed session', async () => {
      const jar = new CookieJar();
      await jar.fetch(`${app().url}/set`);
      const response = await jar.fetch(`${app().url}/destroy`);
      assert.match(response.headers.getSetCookie()[0] ?? '', /^ci_session=; Max-Age=0;/);
      assert.deepEqual(cacheHeadersOf(response), NOCACHE);
    });
  });

  describe(`${name}: every cacheLimiter value, with cacheExpire 30 minutes`, () => {
    const clock = new FakeClock();
    const expected = {
      nocache: () => NOCACHE,
      private: () => ({ expires: PHP_PAST, cacheControl: 'private, max-age=1800', pragma: null }),
      private_no_expire: () => ({
        expires: null,
        cacheControl: 'private, max-age=1800',
        pragma: null,
      }),
      public: () => ({
        expires: new Date(clock.now() + 1800 * 1000).toUTCString(),
        cacheControl: 'public, max-age=1800',
        pragma: null,
      }),
      false: () => NO_CACHE_HEADERS,
    };
    const limiters = ['nocache', 'private', 'private_no_expire', 'public', false] as const;
    const apps = limiters.map((cacheLimiter) =>
      serve(
        factory,
        () => ({ session: { driver: 'array', clock: clock.now, cacheLimiter, cacheExpire: 30 } }),
        {
          '/set': ({ session }) => {
            session.set('name', 'ada');
            return 'ok';
          },
        },
      ),
    );

    limiters.forEach((cacheLimiter, index) => {
      it(`cacheLimiter ${String(cacheLimiter)} sends PHP's headers`, async () => {
        const response = await fetch(`${apps[index]?.().url}/set`);
        assert.equal(response.status, 200);
        assert.deepEqual(cacheHeadersOf(response), expected[String(cacheLimiter) as 'false']());
        await response.arrayBuffer();
      });
    });
  });

  describe(`${name}: cookie.secure 'auto' over HTTPS`, () => {
    const app = serve(
      factory,
      () => ({
        session: { driver: 'array', cookie: { secure: 'auto' } },
        tls: selfSignedCertificate(),
      }),
      {
        '/set': ({ session }) => {
          session.set('name', 'ada');
          return 'ok';
        },
      },
    );

    it('marks the cookie Secure when the request came over TLS', async () => {
      const answer = await httpsGet(`${app().url}/set`, selfSignedCertificate().cert);
      assert.equal(answer.status, 200);
      assert.equal(answer.setCookies.length, 1);
      assert.match(answer.setCookies[0] ?? '', /^ci_session=[0-9a-f]{32}; .*; Secure; HttpOnly;/);
    });
  });

  describe(`${name}: cookie.secure 'auto' over plain HTTP`, () => {
    const app = serve(
      factory,
      () => ({ session: { driver: 'array', cookie: { secure: 'auto' } } }),
      {
        '/set': ({ session }) => {
          session.set('name', 'ada');
          return 'ok';
        },
      },
    );

    it('sends no Secure attribute, even when the client says X-Forwarded-Proto: https', async () => {
      for (const headers of [{}, { 'X-Forwarded-Proto': 'https' }] as Record<string, string>[]) {
        const response = await fetch(`${app().url}/set`, { headers });
        const [cookie = ''] = response.headers.getSetCookie();
        assert.match(cookie, /^ci_session=[0-9a-f]{32}; .*; HttpOnly; SameSite=Lax$/);
        assert.doesNotMatch(cookie, /Secure/);
        await response.arrayBuffer();
      }
    });
  });

  describe(`${name}: cookie.secure 'auto' behind a trusted proxy`, () => {
    const app = serve(
      factory,
      () => ({ session: { driver: 'array', cookie: { secure: 'auto' } }, trustProxy: true }),
      {
        '/set': ({ session }) => {
          session.set('name', 'ada');
          return 'ok';
        },
      },
    );

    it("follows the trusted proxy's X-Forwarded-Proto", async () => {
      const overHttps = await fetch(`${app().url}/set`, {
        headers: { 'X-Forwarded-Proto': 'https' },
      });
      assert.match(overHttps.headers.getSetCookie()[0] ?? '', /; Secure; HttpOnly;/);
      await overHttps.arrayBuffer();
      const overHttp = await fetch(`${app().url}/set`, {
        headers: { 'X-Forwarded-Proto': 'http' },
      });
      assert.match(overHttp.headers.getSetCookie()[0] ?? '', /^ci_session=[0-9a-f]{32};/);
      assert.doesNotMatch(overHttp.headers.getSetCookie()[0] ?? '', /Secure/);
      await overHttp.arrayBuffer();
    });
  });

  describe(`${name}: cookie.secure true over plain HTTP`, () => {
    const { warnings, logger } = warningsLogger();
    const app = serve(
      factory,
      () => ({ session: { driver: 'array', cookie: { secure: true }, logger } }),
      {
        '/set': ({ session }) => {
          session.set('name', 'ada');
          return 'ok';
        },
      },
    );

    it('still sends the cookie with Secure, and warns once that the browser will drop it', async () => {
      for (let visitor = 0; visitor < 3; visitor += 1) {
        const response = await fetch(`${app().url}/set`);
        assert.equal(response.status, 200);
        assert.match(response.headers.getSetCookie()[0] ?? '', /; Secure; HttpOnly;/);
        await response.arrayBuffer();
      }
      assert.equal(warnings.length, 1, warnings.join('\n'));
      assert.match(warnings[0] ?? '', /cookie\.secure is true but a request came over plain HTTP/);
    });
  });
}
