import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient } from 'redis';
import { SessionManager } from '../../src/manager.js';
import { CookieJar } from '../helpers/cookie-jar.js';
import { type ChildServer, startCounterServer } from '../helpers/processes.js';
import {
  type PrivateRedis,
  redisBinarySkip,
  redisCli,
  startPrivateRedis,
} from './redis/servers.js';

// This file starts its own redis-server (it kills it on purpose), so it needs only the binary.
const skip = await redisBinarySkip();
const PORT = 7301;
const IO_TIMEOUT_MS = 500;
const prefix = 'outage:';

let redis: PrivateRedis | undefined;
const children: ChildServer[] = [];

before(async () => {
  if (skip === false) redis = await startPrivateRedis(PORT);
});

after(async () => {
  for (const child of children) await child.kill('SIGKILL');
  await redis?.stop();
});

function requireRedis(): PrivateRedis {
  if (redis === undefined) throw new Error('the private redis-server did not start');
  return redis;
}

/** GET with a hard bound, so a hanging request fails the test instead of stalling it. */
async function get(url: string, cookie: string | undefined, boundMs: number) {
  const response = await fetch(url, {
    headers: cookie === undefined ? {} : { cookie },
    signal: AbortSignal.timeout(boundMs),
  });
  await response.arrayBuffer();
  return response.status;
}

describe('redis outage on a private server', { skip }, () => {
  it('answers 503 within the IO timeout while Redis is down, stays up, and recovers by itself', async () => {
    const server = await startCounterServer({
      driver: 'redis',
      savePath: `tcp://127.0.0.1:${PORT}?prefix=${prefix}`,
      ioTimeout: IO_TIMEOUT_MS,
      lockWait: 2_000,
      timeToUpdate: 0,
      gcProbability: 0,
    });
    children.push(server);
    const jar = new CookieJar();
    assert.equal((await jar.fetch(`${server.url}/inc`)).status, 200);
    const cookie = jar.header();

    // Load from a few concurrent clients while the server goes away.
    let stop = false;
    const outcomes: number[] = [];
    const load = Array.from({ length: 4 }, async () => {
      while (!stop) {
        outcomes.push(await get(`${server.url}/inc`, cookie, IO_TIMEOUT_MS + 3_000));
      }
    });
    await sleep(200);
    await requireRedis().kill();
    const downSince = outcomes.length;
    await sleep(800);
    stop = true;
    await Promise.all(load);
    assert.ok(outcomes.slice(0, downSince).includes(200), 'requests succeeded before the outage');
    const during = outcomes.slice(downSince + 4);
    assert.ok(during.length > 0, 'requests were answered during the outage');
    assert.deepEqual(
      during.filter((status) => status !== 503),
      [],
      'every request during the outage was a 503',
    );
    for (const path of ['/inc', '/count']) {
      assert.equal(await get(`${server.url}${path}`, cookie, IO_TIMEOUT_MS + 3_000), 503);
    }
    assert.equal(server.child.exitCode, null, 'the app process is still running');

    await requireRedis().restart();
    let status = 0;
    for (let attempt = 0; attempt < 50 && status !== 200; attempt += 1) {
      status = await get(`${server.url}/inc`, cookie, IO_TIMEOUT_MS + 3_000);
      if (status !== 200) await sleep(100);
    }
    assert.equal(status, 200, 'the app serves again once Redis is back, without a restart');
    // The restarted server forgot its Lua scripts, so this also went through the EVAL fallback.
    assert.equal(await get(`${server.url}/count`, cookie, 2_000), 200);
  });

  it('costs two Redis commands (two EVALSHA) per request on an uncontended session', async () => {
    const manager = new SessionManager({
      driver: 'redis',
      savePath: `127.0.0.1:${PORT}?prefix=${prefix}count:`,
      gcProbability: 0,
      timeToUpdate: 0,
    });
    const visit = async (cookieHeader: string | undefined, change: boolean) => {
      const session = await manager.start({ cookieHeader, ip: '127.0.0.1', ajax: false });
      if (change) session.set('n', Number(session.get('n') ?? 0) + 1);
      const cookies = manager.setCookies(session);
      await manager.commit(session);
      return { id: session.id, cookies };
    };
    try {
      const first = await visit(undefined, true);
      const cookieHeader = `ci_session=${first.id}`;
      await visit(cookieHeader, true); // caches the scripts on the server
      await redisCli(PORT, 'CONFIG', 'RESETSTAT');
      const requests = 50;
      for (let index = 0; index < requests; index += 1) await visit(cookieHeader, index % 2 === 0);
      const stats = Object.fromEntries(
        [...(await commandStats(PORT))].filter(([name]) => !/^(config|info|hello)/.test(name)),
      );
      // commandstats also counts the commands a script runs. These are exactly what 50 lock-and-read
      // (SET NX + GET) and 25 write (GET token + SET + DEL) and 25 touch (GET token + EXPIRE + DEL)
      // scripts run, so nothing else reached the server: 2 round trips (EVALSHA) per request.
      assert.deepEqual(stats, {
        evalsha: requests * 2,
        set: requests + requests / 2,
        get: requests * 2,
        del: requests,
        expire: requests / 2,
      });
    } finally {
      await manager.shutdown();
    }
  });
});

async function commandStats(port: number): Promise<Map<string, number>> {
  const client = createClient({ socket: { host: '127.0.0.1', port } });
  await client.connect();
  try {
    const info = await client.info('commandstats');
    const stats = new Map<string, number>();
    for (const match of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
      stats.set(match[1] ?? '', Number(match[2]));
    }
    return stats;
  } finally {
    client.destroy();
  }
}
