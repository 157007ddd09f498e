/**
 * The redis driver in CodeIgniter's layout, sharing keys with a real CodeIgniter 4.1.3 app
 * (RedisHandler): see shared-sessions.ts for the scenarios.
 */
import { randomBytes } from 'node:crypto';
import { createClient } from 'redis';
import { redis } from '../../src/drivers/redis.js';
import { serviceSkip } from '../helpers/services.js';
import { codeIgniterSkip } from './ci-app.js';
import { sharedSessionSuite } from './shared-sessions.js';

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
