import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { CookieJar } from '../helpers/cookie-jar.js';
import {
  type ChildServer,
  concurrentIncrements,
  startCounterServer,
} from '../helpers/processes.js';
import { serviceSkip } from '../helpers/services.js';
import { deleteKeys, listKeys, SHARED_HOST, SHARED_PORT, uniquePrefix } from './redis/servers.js';

const skip = await serviceSkip('Redis', SHARED_HOST, SHARED_PORT);
const prefix = uniquePrefix('processes');
const started: ChildServer[] = [];

async function server(config: Record<string, unknown>, delayMs = 0): Promise<ChildServer> {
  const child = await startCounterServer(
    {
      driver: 'redis',
      savePath: `tcp://${SHARED_HOST}:${SHARED_PORT}?prefix=${prefix}`,
      timeToUpdate: 0,
      gcProbability: 0,
      ...config,
    },
    { delayMs },
  );
  started.push(child);
  return child;
}

after(async () => {
  for (const child of started) await child.kill('SIGKILL');
  if (skip === false) await deleteKeys(prefix);
});

describe('redis driver across processes', { skip }, () => {
  it('loses no update: two processes × 150 concurrent increments on one session → 300', async () => {
    const [first, second] = await Promise.all([
      server({ lockWait: 30_000 }, 1),
      server({ lockWait: 30_000 }, 1),
    ]);
    const jar = new CookieJar();
    const created = await jar.fetch(`${first.url}/inc`);
    assert.deepEqual(await created.json(), { count: 1 });
    const cookie = jar.header();
    assert.ok(cookie !== undefined, 'the first increment set a session cookie');

    assert.deepEqual(
      await concurrentIncrements([first, second], cookie, 150),
      [],
      'every increment succeeded',
    );
    const counted = await fetch(`${second.url}/count`, { headers: { cookie } });
    assert.deepEqual(await counted.json(), { count: 301 });
    // The lock keys are gone once every request has finished.
    assert.deepEqual(
      (await listKeys(prefix)).filter((key) => key.endsWith(':lock')),
      [],
    );
  });

  it('recovers a SIGKILLed lock holder’s session once its lock TTL runs out', async () => {
    // lockWait is lockTtl + 1.5 s: without a short, expiring lock the second process would 503.
    const config = { lockTtl: 1_000, lockWait: 2_500 };
    const [holder, survivor] = await Promise.all([server(config), server(config)]);
    const jar = new CookieJar();
    const created = await jar.fetch(`${survivor.url}/inc`);
    assert.deepEqual(await created.json(), { count: 1 });
    const cookie = jar.header() ?? '';

    const held = fetch(`${holder.url}/hold?ms=60000`, { headers: { cookie } }).catch(
      (error: unknown) => error,
    );
    await holder.waitForLine('holding');
    await holder.kill('SIGKILL');
    assert.ok((await held) instanceof Error, 'the killed holder never answered');

    const after = await fetch(`${survivor.url}/inc`, { headers: { cookie } });
    assert.equal(after.status, 200);
    assert.deepEqual(await after.json(), { count: 2 });
  });
});
