import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createClient } from 'redis';
import { SessionManager } from '../../src/manager.js';
import {
  type PrivateRedis,
  redisBinarySkip,
  redisCli,
  startPrivateRedis,
} from './redis/servers.js';

// This file starts its own redis-server (its command statistics are reset), so it needs only the binary.
const skip = await redisBinarySkip();
const PORT = 7301;
const prefix = 'round-trips:';

let redis: PrivateRedis | undefined;

before(async () => {
  if (skip === false) redis = await startPrivateRedis(PORT);
});

after(async () => {
  await redis?.stop();
});

describe('redis round trips on a private server', { skip }, () => {
  /** Runs 50 requests on one session, every other one changing it, and answers the command counts. */
  async function countCommands(touchAfter: number): Promise<Record<string, number>> {
    const manager = new SessionManager({
      driver: 'redis',
      savePath: `127.0.0.1:${PORT}?prefix=${prefix}count${touchAfter}:`,
      gcProbability: 0,
      timeToUpdate: 0,
      touchAfter,
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
      for (let index = 0; index < REQUESTS; index += 1) await visit(cookieHeader, index % 2 === 0);
      return Object.fromEntries(
        [...(await commandStats(PORT))].filter(([name]) => !/^(config|info|hello)/.test(name)),
      );
    } finally {
      await manager.shutdown();
    }
  }

  const REQUESTS = 50;

  it('costs two Redis commands (two EVALSHA) per request on an uncontended session', async () => {
    // commandstats also counts the commands a script runs. These are exactly what 50 lock-and-read
    // (SET NX + GET + PTTL) and 25 write (GET token + SET + DEL) and 25 touch (GET token + EXPIRE
    // + DEL) scripts run, so nothing else reached the server: 2 round trips (EVALSHA) per request.
    assert.deepEqual(await countCommands(0), {
      evalsha: REQUESTS * 2,
      set: REQUESTS + REQUESTS / 2,
      get: REQUESTS * 2,
      pttl: REQUESTS,
      del: REQUESTS,
      expire: REQUESTS / 2,
    });
  });

  it('does not refresh the expiry of an unchanged session written moments ago (touchAfter)', async () => {
    // The 25 unchanged requests only unlock (GET token + DEL): no EXPIRE reaches the server.
    assert.deepEqual(await countCommands(0.1), {
      evalsha: REQUESTS * 2,
      set: REQUESTS + REQUESTS / 2,
      get: REQUESTS * 2,
      pttl: REQUESTS,
      del: REQUESTS,
    });
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
