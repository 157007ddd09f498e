/**
 * The redis driver in CodeIgniter's layout, sharing keys with a real CodeIgniter 4.1.3 app
 * (RedisHandler): see shared-sessions.ts for the scenarios.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { createClient } from 'redis';
import { redis } from '../../src/drivers/redis.js';
import { SessionManager } from '../../src/manager.js';
import { serviceSkip } from '../helpers/services.js';
import { type CodeIgniterApp, codeIgniterSkip, startCodeIgniter } from './ci-app.js';
import { PHP_ID_FORMAT, PHP_ID_INI, sharedSessionSuite } from './shared-sessions.js';

/** A Redis database of its own, so these keys never meet other tests' keys in database 0. */
const DATABASE = 9;

const skip = (await codeIgniterSkip('redis')) || (await serviceSkip('Redis', '127.0.0.1', 6379));

sharedSessionSuite('redis', skip, async () => {
  const prefix = `keepsake_ci_${randomBytes(4).toString('hex')}:`;
  const savePath = `tcp://127.0.0.1:6379?database=${DATABASE}&prefix=${prefix}`;
  const client = createClient({ url: `redis://127.0.0.1:6379/${DATABASE}` });
  await client.connect();
  return {
    // One PHP worker: CodeIgniter 4.1's Redis lock (a TTL check, then SETEX) lets two PHP requests
    // hold it at once and lose an update between themselves, with or without keepsake (see
    // docs/codeigniter.md). Here PHP's requests contend with Node's only, which must lose nothing.
    codeigniter: { driver: 'redis', savePath, workers: 1 },
    driver: () => redis({ url: savePath, layout: 'codeigniter' }),
    async read(id) {
      const value = await client.get(`${prefix}${id}`);
      return value === null ? null : Buffer.from(value, 'utf8');
    },
    async write(id, data) {
      await client.set(`${prefix}${id}`, data.toString('utf8'), { EX: 600 });
    },
    async cleanup() {
      for await (const keys of client.scanIterator({ MATCH: `${prefix}*`, COUNT: 100 })) {
        if (keys.length > 0) await client.del(keys);
      }
      client.destroy();
    },
  };
});

describe('revoking a session a CodeIgniter 4.1.3 request holds (redis)', { skip }, () => {
  const prefix = `keepsake_ci_${randomBytes(4).toString('hex')}:`;
  const savePath = `tcp://127.0.0.1:6379?database=${DATABASE}&prefix=${prefix}`;
  const client = createClient({ url: `redis://127.0.0.1:6379/${DATABASE}` });
  const warnings: string[] = [];
  let app: CodeIgniterApp;
  let manager: SessionManager;

  before(async () => {
    await client.connect();
    app = await startCodeIgniter({ driver: 'redis', savePath, workers: 2, ini: PHP_ID_INI });
    manager = new SessionManager({
      driver: redis({ url: savePath, layout: 'codeigniter' }),
      sessionId: PHP_ID_FORMAT,
      gcProbability: 0,
      logger: { debug() {}, warn: (message) => warnings.push(message), error() {} },
    });
    await manager.ready();
  });
  after(async () => {
    await manager?.shutdown();
    await app?.stop();
    for await (const keys of client.scanIterator({ MATCH: `${prefix}*`, COUNT: 100 })) {
      if (keys.length > 0) await client.del(keys);
    }
    client.destroy();
  });

  it("leaves PHP's lock in place and warns; PHP, which checks no lock, stores the session again", async () => {
    const login = await fetch(`${app.url}/keepsake/login?user=alice`);
    assert.equal(login.status, 200);
    const id = /^ci_session=([^;]+)/.exec(login.headers.getSetCookie()[0] ?? '')?.[1] ?? '';
    assert.notEqual(await client.get(`${prefix}${id}`), null);
    const slow = fetch(`${app.url}/keepsake/increment?key=hits&sleep=1500`, {
      headers: { cookie: `ci_session=${id}` },
    });
    const deadline = performance.now() + 5_000;
    while ((await client.get(`${prefix}${id}:lock`)) === null) {
      assert.ok(performance.now() < deadline, 'PHP took the lock');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const phpLock = await client.get(`${prefix}${id}:lock`);
    assert.equal(await manager.revoke(id), true);
    assert.equal(await client.get(`${prefix}${id}`), null, 'deleted at once');
    assert.equal(await client.get(`${prefix}${id}:lock`), phpLock, "PHP's lock is kept");
    assert.equal(
      warnings.filter((line) => /CodeIgniter request held its lock/.test(line)).length,
      1,
    );
    assert.equal((await slow).status, 200);
    assert.match((await client.get(`${prefix}${id}`)) ?? '', /hits\|i:1;/, 'PHP wrote it back');
    // Revoked again once PHP is done, it stays ended for Node.
    assert.equal(await manager.revoke(id), true);
    const next = await manager.start({
      cookieHeader: `ci_session=${id}`,
      ip: '127.0.0.1',
      ajax: false,
    });
    assert.notEqual(next.id, id);
    assert.equal(next.get('user'), null);
    await manager.commit(next);
  });
});
