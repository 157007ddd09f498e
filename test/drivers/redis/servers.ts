/**
 * Redis helpers for the redis driver's tests: unique key prefixes, key cleanup on the shared
 * server, and private redis-server instances (single or a 3-master Cluster) on spare ports.
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { createClient } from 'redis';
import { canConnect, servicesRequired } from '../../helpers/services.js';

const run = promisify(execFile);

export const SHARED_HOST = '127.0.0.1';
export const SHARED_PORT = 6379;

/**
 * Like serviceSkip, for tests that start their own redis-server: a skip reason when the binaries are
 * missing on a developer machine; an error when KEEPSAKE_REQUIRE_SERVICES=1.
 */
export async function redisBinarySkip(): Promise<string | false> {
  try {
    await run('redis-server', ['--version']);
    await run('redis-cli', ['--version']);
    return false;
  } catch {
    const message = 'redis-server and redis-cli are not installed';
    if (servicesRequired)
      throw new Error(`${message}, and KEEPSAKE_REQUIRE_SERVICES=1 requires them.`);
    process.stderr.write(`\n*** SKIPPING private-Redis tests: ${message} (see .ci/run). ***\n\n`);
    return `${message} (skipped; set KEEPSAKE_REQUIRE_SERVICES=1 to make this a failure)`;
  }
}

/** A key prefix no other test file (or run) uses. */
export function uniquePrefix(label: string): string {
  return `keepsake-test:${label}:${randomBytes(4).toString('hex')}:`;
}

/** Runs redis-cli against host:port and answers its trimmed output. */
export async function redisCli(port: number, ...args: string[]): Promise<string> {
  const { stdout } = await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args]);
  return stdout.trim();
}

/** Deletes every key under `prefix` on the shared server (SCAN, never KEYS). */
export async function deleteKeys(prefix: string, port = SHARED_PORT): Promise<number> {
  const client = createClient({ socket: { host: SHARED_HOST, port } });
  client.on('error', () => {});
  await client.connect();
  let removed = 0;
  try {
    for await (const keys of client.scanIterator({ MATCH: `${prefix}*`, COUNT: 500 })) {
      if (keys.length > 0) removed += await client.del(keys);
    }
  } finally {
    client.destroy();
  }
  return removed;
}

/** Keys under `prefix` on a server, for assertions. */
export async function listKeys(prefix: string, port = SHARED_PORT): Promise<string[]> {
  const client = createClient({ socket: { host: SHARED_HOST, port } });
  client.on('error', () => {});
  await client.connect();
  const found: string[] = [];
  try {
    for await (const keys of client.scanIterator({ MATCH: `${prefix}*`, COUNT: 500 })) {
      found.push(...keys);
    }
  } finally {
    client.destroy();
  }
  return found.sort();
}

async function waitFor(check: () => Promise<boolean>, what: string, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(50);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** A redis-server this test started; stop() shuts it down and removes its directory. */
export interface PrivateRedis {
  readonly port: number;
  readonly dir: string;
  /** SIGKILLs the server (an outage) and waits until the port is closed. */
  kill(): Promise<void>;
  /** Starts it again on the same port. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** Starts `redis-server` on `port` (no persistence) as a child of this process. */
export async function startPrivateRedis(
  port: number,
  extraArgs: string[] = [],
): Promise<PrivateRedis> {
  const dir = await mkdtemp(join(tmpdir(), `keepsake-redis-${port}-`));
  let child: ReturnType<typeof spawn> | undefined;
  const launch = async () => {
    child = spawn(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        dir,
        ...extraArgs,
      ],
      { stdio: 'ignore' },
    );
    await waitFor(() => canConnect('127.0.0.1', port, 200), `redis-server on port ${port}`);
  };
  const kill = async () => {
    const current = child;
    child = undefined;
    if (current === undefined || current.exitCode !== null || current.signalCode !== null) return;
    const exited = new Promise((resolve) => current.once('exit', resolve));
    current.kill('SIGKILL');
    await exited;
  };
  await launch();
  return {
    port,
    dir,
    kill,
    restart: launch,
    async stop() {
      await kill();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A throwaway Redis Cluster of three masters on consecutive ports, no replicas. */
export interface PrivateCluster {
  readonly ports: readonly number[];
  stop(): Promise<void>;
}

export async function startPrivateCluster(firstPort: number): Promise<PrivateCluster> {
  const ports = [firstPort, firstPort + 1, firstPort + 2];
  const nodes: PrivateRedis[] = [];
  try {
    for (const port of ports) {
      nodes.push(
        await startPrivateRedis(port, [
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          `nodes-${port}.conf`,
          '--cluster-node-timeout',
          '2000',
        ]),
      );
    }
    await run('redis-cli', [
      '--cluster',
      'create',
      ...ports.map((port) => `127.0.0.1:${port}`),
      '--cluster-replicas',
      '0',
      '--cluster-yes',
    ]);
    for (const port of ports) {
      await waitFor(
        async () => (await redisCli(port, 'cluster', 'info')).includes('cluster_state:ok'),
        `cluster_state:ok on ${port}`,
        20_000,
      );
    }
  } catch (error) {
    for (const node of nodes) await node.stop();
    throw error;
  }
  return {
    ports,
    async stop() {
      for (const node of nodes) await node.stop();
    },
  };
}

/** A master and one Sentinel watching it as `name`. */
export interface PrivateSentinel {
  readonly name: string;
  readonly masterPort: number;
  readonly sentinelPort: number;
  stop(): Promise<void>;
}

export async function startPrivateSentinel(
  masterPort: number,
  sentinelPort: number,
  name = 'keepsake',
): Promise<PrivateSentinel> {
  const master = await startPrivateRedis(masterPort);
  const dir = await mkdtemp(join(tmpdir(), `keepsake-sentinel-${sentinelPort}-`));
  const configFile = join(dir, 'sentinel.conf');
  await writeFile(
    configFile,
    [
      `port ${sentinelPort}`,
      'bind 127.0.0.1',
      `dir ${dir}`,
      `sentinel monitor ${name} 127.0.0.1 ${masterPort} 1`,
      '',
    ].join('\n'),
  );
  const sentinel = spawn('redis-server', [configFile, '--sentinel'], { stdio: 'ignore' });
  const stop = async () => {
    if (sentinel.exitCode === null && sentinel.signalCode === null) {
      const exited = new Promise((resolve) => sentinel.once('exit', resolve));
      sentinel.kill('SIGKILL');
      await exited;
    }
    await master.stop();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(
      async () =>
        (await canConnect('127.0.0.1', sentinelPort, 200)) &&
        (await redisCli(sentinelPort, 'SENTINEL', 'get-master-addr-by-name', name)).includes(
          String(masterPort),
        ),
      `the Sentinel on ${sentinelPort}`,
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return { name, masterPort, sentinelPort, stop };
}
