import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createClient } from 'redis';
import { SessionManager } from '../../src/manager.js';
import { assertOutageAndRecovery } from '../helpers/outage.js';
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
    // The restarted server has forgotten the Lua scripts, so recovery also goes through the EVAL
    // fallback.
    await assertOutageAndRecovery({
      server,
      storeName: 'Redis',
      boundMs: IO_TIMEOUT_MS + 3_000,
      stopStore: () => requireRedis().kill(),
      restartStore: () => requireRedis().restart(),
    });
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
