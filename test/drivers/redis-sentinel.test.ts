import { after, before, describe } from 'node:test';
import { Redis } from 'ioredis';
import { createSentinel, type RedisSentinelType } from 'redis';
import { redis } from '../../src/drivers/redis.js';
import { runConformanceSuite } from '../../src/testing/conformance.js';
import { type PrivateSentinel, redisBinarySkip, startPrivateSentinel } from './redis/servers.js';

const MASTER_PORT = 7321;
const SENTINEL_PORT = 7322;
const skip = await redisBinarySkip();

let servers: PrivateSentinel | undefined;
let nodeRedis: RedisSentinelType | undefined;
let ioredis: Redis | undefined;

before(async () => {
  if (skip !== false) return;
  servers = await startPrivateSentinel(MASTER_PORT, SENTINEL_PORT);
  nodeRedis = createSentinel({
    name: servers.name,
    sentinelRootNodes: [{ host: '127.0.0.1', port: SENTINEL_PORT }],
  });
  nodeRedis.on('error', () => {});
  await nodeRedis.connect();
  ioredis = new Redis({
    sentinels: [{ host: '127.0.0.1', port: SENTINEL_PORT }],
    name: servers.name,
    lazyConnect: true,
  });
  await ioredis.connect();
});

after(async () => {
  await nodeRedis?.destroy();
  ioredis?.disconnect();
  await servers?.stop();
});

function required<T>(value: T | undefined): T {
  if (value === undefined) throw new Error('the Redis Sentinel setup did not start');
  return value;
}

describe('redis driver behind Redis Sentinel', { skip }, () => {
  runConformanceSuite('redis (node-redis createSentinel)', {
    driver: () => redis({ client: required(nodeRedis), prefix: 'sentinel:node-redis:' }),
    expiry: 'real',
  });

  runConformanceSuite('redis (ioredis with sentinels)', {
    driver: () => redis({ client: required(ioredis), prefix: 'sentinel:ioredis:' }),
    expiry: 'real',
  });
});
