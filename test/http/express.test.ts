import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { FakeClock } from '../../src/clock.js';
import { CookieJar } from '../helpers/cookie-jar.js';
import { type RunningApp, startExpressApp } from '../helpers/express-server.js';

const ID = /^[0-9a-f]{32}$/;
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('Express: flashdata and tempdata', () => {
  const clock = new FakeClock();
  let running: RunningApp;
  before(async () => {
    running = await startExpressApp(
      { driver: 'array', clock: clock.now, timeToUpdate: 0 },
      (app) => {
        app.get('/flash', (request, response) => {
          request.session.setFlashdata('notice', 'saved');
          response.send('ok');
        });
        app.get('/temp', (request, response) => {
          request.session.setTempdata('coupon', 'SAVE10', 60);
          response.send('ok');
        });
        app.get('/read', (request, response) => {
          response.json({
            notice: request.session.getFlashdata('notice'),
            coupon: request.session.getTempdata('coupon'),
          });
        });
      },
    );
  });
  after(() => running.close());

  it('keeps flashdata for exactly the next request', async () => {
    const jar = new CookieJar();
    await jar.fetch(`${running.url}/flash`);
    assert.equal((await (await jar.fetch(`${running.url}/read`)).json()).notice, 'saved');
    assert.equal((await (await jar.fetch(`${running.url}/read`)).json()).notice, null);
  });

  it('keeps tempdata until its ttl passes, across any number of requests', async () => {
    const jar = new CookieJar();
    await jar.fetch(`${running.url}/temp`);
    for (let request = 0; request < 3; request += 1) {
      clock.advance(25);
      const expected = request < 2 ? 'SAVE10' : null;
      assert.equal((await (await jar.fetch(`${running.url}/read`)).json()).coupon, expected);
    }
  });
});

describe('Express: cookies, strict mode and destroy', () => {
  let running: RunningApp;
  before(async () => {
    running = await startExpressApp({ driver: 'array' }, (app) => {
      app.get('/set', (request, response) => {
        request.session.set('name', 'ada');
        response.send('ok');
      });
      app.get('/get', (request, response) => {
        response.json({ id: request.session.id, name: request.session.get('name') });
      });
      app.get('/destroy', async (request, response) => {
        await request.session.destroy();
        response.send('bye');
      });
    });
  });
  after(() => running.close());

  it('sends a new HttpOnly cookie once, then none while the ID is unchanged', async () => {
    const jar = new CookieJar();
    const first = await jar.fetch(`${running.url}/set`);
    const [cookie] = first.headers.getSetCookie();
    assert.match(
      cookie ?? '',
      /^ci_session=[0-9a-f]{32}; Max-Age=7200; Expires=.+; Path=\/; HttpOnly; SameSite=Lax$/,
    );
    const second = await jar.fetch(`${running.url}/get`);
    assert.deepEqual(second.headers.getSetCookie(), []);
    assert.equal((await second.json()).name, 'ada');
  });

  it('never adopts an ID the client chose (strict mode)', async () => {
    const jar = new CookieJar();
    const chosen = 'a'.repeat(32);
    jar.set('ci_session', chosen);
    const response = await jar.fetch(`${running.url}/get`);
    const body = await response.json();
    assert.match(body.id, ID);
    assert.notEqual(body.id, chosen);
    assert.equal(jar.get('ci_session'), body.id);
  });

  it('destroy deletes the data and sends a deletion cookie', async () => {
    const jar = new CookieJar();
    await jar.fetch(`${running.url}/set`);
    const oldId = jar.get('ci_session');
    const response = await jar.fetch(`${running.url}/destroy`);
    assert.match(
      response.headers.getSetCookie()[0] ?? '',
      /^ci_session=; Max-Age=0; Expires=Thu, 01 Jan 1970/,
    );
    assert.equal(jar.get('ci_session'), undefined);
    const stale = new CookieJar();
    stale.set('ci_session', oldId ?? '');
    const body = await (await stale.fetch(`${running.url}/get`)).json();
    assert.equal(body.name, null);
    assert.notEqual(body.id, oldId);
  });
});

describe('Express: automatic regeneration', () => {
  const clock = new FakeClock();
  let running: RunningApp;
  let releaseSlow: () => void = () => {};
  before(async () => {
    running = await startExpressApp(
      { driver: 'array', clock: clock.now, timeToUpdate: 300 },
      (app) => {
        app.get('/inc', (request, response) => {
          const count = Number(request.session.get('count') ?? 0) + 1;
          request.session.set('count', count);
          response.json({ count, id: request.session.id });
        });
        app.get('/slow-inc', async (request, response) => {
          const count = Number(request.session.get('count') ?? 0) + 1;
          await new Promise<void>((resolve) => {
            releaseSlow = resolve;
          });
          request.session.set('count', count);
          response.json({ count, id: request.session.id });
        });
      },
    );
  });
  after(() => running.close());

  it('rotates the ID after timeToUpdate and loses nothing from a request still carrying the old cookie', async () => {
    const jar = new CookieJar();
    const first = await (await jar.fetch(`${running.url}/inc`)).json();
    const oldId = first.id;
    clock.advance(301);
    const rotated = await jar.fetch(`${running.url}/inc`);
    const rotatedBody = await rotated.json();
    assert.notEqual(rotatedBody.id, oldId);
    assert.equal(rotatedBody.count, 2);
    assert.equal(jar.get('ci_session'), rotatedBody.id);
    // A request sent before the new cookie arrived (old ID) reaches the same data.
    const inFlight = new CookieJar();
    inFlight.set('ci_session', oldId);
    const late = await (await inFlight.fetch(`${running.url}/inc`)).json();
    assert.equal(late.count, 3);
    assert.equal(late.id, rotatedBody.id);
    assert.equal(inFlight.get('ci_session'), rotatedBody.id);
    const final = await (await jar.fetch(`${running.url}/inc`)).json();
    assert.equal(final.count, 4);
  });

  it('a slow request holding the lock when rotation is due does not lose its write', async () => {
    const jar = new CookieJar();
    await jar.fetch(`${running.url}/inc`);
    clock.advance(301);
    const slow = jar.fetch(`${running.url}/slow-inc`);
    await pause(50);
    const queued = jar.fetch(`${running.url}/inc`);
    await pause(50);
    releaseSlow();
    const results = await Promise.all(
      [slow, queued].map(async (pending) => (await pending).json()),
    );
    assert.deepEqual(results.map((result) => result.count).sort(), [2, 3]);
    assert.equal(results[0].id, results[1].id);
  });
});

describe('Express: AJAX requests', () => {
  const clock = new FakeClock();
  let running: RunningApp;
  before(async () => {
    running = await startExpressApp({ driver: 'array', clock: clock.now }, (app) => {
      app.get('/id', (request, response) => {
        response.json({ id: request.session.id });
      });
    });
  });
  after(() => running.close());

  it('never regenerates on AJAX, and refreshes the cookie on every AJAX response', async () => {
    const jar = new CookieJar();
    const { id } = await (await jar.fetch(`${running.url}/id`)).json();
    clock.advance(10_000 - 7200);
    const ajax = await jar.fetch(`${running.url}/id`, {
      headers: { 'X-Requested-With': 'xmlhttprequest' },
    });
    assert.equal((await ajax.json()).id, id);
    assert.match(
      ajax.headers.getSetCookie()[0] ?? '',
      new RegExp(`^ci_session=${id}; Max-Age=7200`),
    );
    const normal = await jar.fetch(`${running.url}/id`);
    assert.notEqual((await normal.json()).id, id);
  });
});

describe('Express: matchIP', () => {
  let running: RunningApp;
  before(async () => {
    running = await startExpressApp(
      { driver: 'array', matchIP: true },
      (app) => {
        app.get('/set', (request, response) => {
          request.session.set('who', 'v4');
          response.send('ok');
        });
        app.get('/get', (request, response) => {
          response.json({ who: request.session.get('who') });
        });
      },
      '::',
    );
  });
  after(() => running.close());

  it('a session made from 127.0.0.1 is not found from ::1', async () => {
    const port = new URL(running.url).port;
    const jar = new CookieJar();
    await jar.fetch(`http://127.0.0.1:${port}/set`);
    assert.equal((await (await jar.fetch(`http://127.0.0.1:${port}/get`)).json()).who, 'v4');
    const fromV6 = new CookieJar();
    fromV6.set('ci_session', jar.get('ci_session') ?? '');
    assert.equal((await (await fromV6.fetch(`http://[::1]:${port}/get`)).json()).who, null);
    assert.notEqual(fromV6.get('ci_session'), jar.get('ci_session'));
  });
});

describe('Express: concurrency', () => {
  let running: RunningApp;
  before(async () => {
    running = await startExpressApp({ driver: 'array' }, (app) => {
      app.get('/inc', async (request, response) => {
        const count = Number(request.session.get('count') ?? 0);
        await pause(Math.random() * 2);
        request.session.set('count', count + 1);
        response.json({ count: count + 1 });
      });
      app.get('/count', (request, response) => {
        response.json({ count: request.session.get('count') });
      });
    });
  });
  after(() => running.close());

  it('200 concurrent read-modify-write requests on one session count to exactly 200', async () => {
    const jar = new CookieJar();
    await jar.fetch(`${running.url}/count`);
    const cookie = jar.header() ?? '';
    const responses = await Promise.all(
      Array.from({ length: 200 }, () => fetch(`${running.url}/inc`, { headers: { cookie } })),
    );
    const counts = await Promise.all(
      responses.map(async (response) => (await response.json()).count),
    );
    assert.deepEqual(
      counts.sort((left, right) => left - right),
      Array.from({ length: 200 }, (_, index) => index + 1),
    );
    assert.equal((await (await jar.fetch(`${running.url}/count`)).json()).count, 200);
  });
});
