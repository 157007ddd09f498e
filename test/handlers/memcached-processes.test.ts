import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { CookieJar } from '../helpers/cookie-jar.js';
import {
  type ChildServer,
  concurrentIncrements,
  startCounterServer,
} from '../helpers/processes.js';
import { serviceSkip } from '../helpers/services.js';
import {
  directClient,
  SHARED_HOST,
  SHARED_PORT,
  SHARED_SERVER,
  uniqueCookieName,
} from './memcached/servers.js';

const skip = await serviceSkip('memcached', SHARED_HOST, SHARED_PORT);
const cookieName = uniqueCookieName('proc');
const started: ChildServer[] = [];
const sessionIds: string[] = [];

async function server(config: Record<string, unknown>, delayMs = 0): Promise<ChildServer> {
  const child = await startCounterServer(
    {
      driver: 'memcached',
      savePath: SHARED_SERVER,
      cookieName,
      // Anything left behind on the shared server expires by itself within a minute.
      expiration: 60,
      timeToUpdate: 0,
      gcProbability: 0,
      ...config,
    },
    { delayMs },
  );
  started.push(child);
  return child;
}

function sessionId(jar: CookieJar): string {
  const id = /=([0-9a-f]{32})/.exec(jar.header() ?? '')?.[1];
  assert.ok(id !== undefined, 'the response set a session cookie');
  sessionIds.push(id);
  return id;
}

after(async () => {
  for (const child of started) await child.kill('SIGKILL');
  if (skip !== false) return;
  const client = directClient(SHARED_SERVER);
  for (const id of sessionIds) {
    await client.delete(`${cookieName}:{${id}}`);
    await client.delete(`${cookieName}:{${id}}:lock`);
  }
  await client.disconnect();
});

describe('memcached driver across processes', { skip }, () => {
  it('loses no update: two processes × 150 concurrent increments on one session → 300', async () => {
    const [first, second] = await Promise.all([
      server({ lockWait: 30_000 }, 1),
      server({ lockWait: 30_000 }, 1),
    ]);
    const jar = new CookieJar();
    const created = await jar.fetch(`${first.url}/inc`);
    assert.deepEqual(await created.json(), { count: 1 });
    const cookie = jar.header();
    const id = sessionId(jar);

    assert.deepEqual(
      await concurrentIncrements([first, second], cookie ?? '', 150),
      [],
      'every increment succeeded',
    );
    const counted = await fetch(`${second.url}/count`, { headers: { cookie: cookie ?? '' } });
    assert.deepEqual(await counted.json(), { count: 301 });

    const client = directClient(SHARED_SERVER);
    try {
      assert.equal(
        await client.get(`${cookieName}:{${id}}:lock`),
        undefined,
        'the lock is gone once every request has finished',
      );
      assert.match((await client.get(`${cookieName}:{${id}}`)) ?? '', /"count":301/);
    } finally {
      await client.disconnect();
    }
  });

  it('recovers a SIGKILLed lock holder’s session once its lock TTL runs out', async () => {
    // lockTtl 1 s is stored as memcached's 2-second minimum. lockWait 3.5 s is that plus one
    // second of slack for memcached's once-a-second clock: with a lock that did not expire (or a
    // long one, like CodeIgniter's 300 s) the survivor would answer 503.
    const config = { lockTtl: 1_000, lockWait: 3_500 };
    const [holder, survivor] = await Promise.all([server(config), server(config)]);
    const jar = new CookieJar();
    const created = await jar.fetch(`${survivor.url}/inc`);
    assert.deepEqual(await created.json(), { count: 1 });
    const cookie = jar.header() ?? '';
    const id = sessionId(jar);

    const held = fetch(`${holder.url}/hold?ms=60000`, { headers: { cookie } }).catch(
      (error: unknown) => error,
    );
    await holder.waitForLine('holding');
    const client = directClient(SHARED_SERVER);
    try {
      assert.notEqual(
        await client.get(`${cookieName}:{${id}}:lock`),
        undefined,
        'the holder has the lock in memcached',
      );
    } finally {
      await client.disconnect();
    }
    await holder.kill('SIGKILL');
    assert.ok((await held) instanceof Error, 'the killed holder never answered');

    const recovered = await fetch(`${survivor.url}/inc`, { headers: { cookie } });
    assert.equal(recovered.status, 200);
    assert.deepEqual(await recovered.json(), { count: 2 });
  });
});
