import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Cluster } from 'ioredis';
import { createCluster, type RedisClusterType } from 'redis';
import { redis } from '../../src/drivers/redis.js';
import { createSessionId } from '../../src/id.js';
import { runConformanceSuite } from '../../src/testing/conformance.js';
import { lock } from '../../src/testing/conformance-store.js';
import { openStore } from '../../src/testing/index.js';
import { type PrivateCluster, redisBinarySkip, startPrivateCluster } from './redis/servers.js';

const FIRST_PORT = 7311;
const skip = await redisBinarySkip();

let cluster: PrivateCluster | undefined;
let nodeRedis: RedisClusterType | undefined;
let ioredis: Cluster | undefined;

before(async () => {
  if (skip !== false) return;
  cluster = await startPrivateCluster(FIRST_PORT);
  nodeRedis = createCluster({
    rootNodes: cluster.ports.map((port) => ({ url: `redis://127.0.0.1:${port}` })),
  });
  nodeRedis.on('error', () => {});
  await nodeRedis.connect();
  ioredis = new Cluster(cluster.ports.map((port) => ({ host: '127.0.0.1', port })));
  await new Promise<void>((resolve, reject) => {
    ioredis?.once('ready', resolve);
    ioredis?.once('error', reject);
  });
});

after(async () => {
  nodeRedis?.destroy();
  ioredis?.disconnect();
  await cluster?.stop();
});

function required<T>(value: T | undefined): T {
  if (value === undefined) throw new Error('the Redis Cluster did not start');
  return value;
}

describe('redis driver on a 3-master Redis Cluster', { skip }, () => {
  runConformanceSuite('redis (node-redis createCluster)', {
    driver: () => redis({ client: required(nodeRedis), prefix: 'cluster:node-redis:' }),
    expiry: 'real',
  });

  runConformanceSuite('redis (ioredis Cluster)', {
    driver: () => redis({ client: required(ioredis), prefix: 'cluster:ioredis:' }),
    expiry: 'real',
  });

  it('spreads sessions over all three masters, each with its lock in the same slot', async () => {
    const { store } = await openStore({
      driver: () => redis({ client: required(nodeRedis), prefix: 'cluster:spread:' }),
      expiry: 'real',
    });
    const client = required(nodeRedis);
    const holders = new Set<string>();
    for (let index = 0; index < 30; index += 1) {
      const key = { id: createSessionId(), ip: null };
      const { token } = await lock(store, key);
      const dataKey = `cluster:spread:{${key.id}}`;
      const slot = Number(await client.sendCommand(dataKey, true, ['CLUSTER', 'KEYSLOT', dataKey]));
      const lockSlot = Number(
        await client.sendCommand(dataKey, true, ['CLUSTER', 'KEYSLOT', `${dataKey}:lock`]),
      );
      assert.equal(lockSlot, slot);
      await store.writeAndUnlock(key, token, '{"c":1}', 60);
      const master = client.masters.find(
        (node) => client.slots[slot]?.master.address === node.address,
      );
      holders.add(master?.address ?? '?');
    }
    assert.equal(holders.size, 3, `sessions landed on ${[...holders].join(', ')}`);
    await store.close();
  });
});
