/**
 * Reliability figures per driver, measured here and never asserted in tests: how long the largest
 * session a driver accepts (its maxPayloadBytes) takes to lock and read back, against ioTimeout;
 * and how long a session stays unavailable after its lock holder is SIGKILLed (crash recovery).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SessionConfig } from '../src/config.js';
import { createSessionManager } from '../src/manager.js';
import { createTable, dropTable, urlOf } from '../test/drivers/database/servers.js';
import { CookieJar } from '../test/helpers/cookie-jar.js';
import type { DriverSpec } from '../test/helpers/driver-spec.js';
import { driverOf } from '../test/helpers/driver-spec.js';
import { startCounterServer } from '../test/helpers/processes.js';
import type { BenchApps, BenchGroup } from './harness.js';
import { portOpen, uniqueName } from './harness.js';

export const apps: BenchApps = {};
export const groups: BenchGroup[] = [];

const READS = 5;
const IO_TIMEOUT_MS = 2_000;

interface Target {
  readonly name: string;
  readonly port: number | null;
  setUp(): Promise<DriverSpec>;
  tearDown(): Promise<void>;
}

function targets(): Target[] {
  let directory = '';
  const inDirectory = (name: string, spec: (dir: string) => DriverSpec): Target => ({
    name,
    port: null,
    async setUp() {
      directory = await mkdtemp(join(tmpdir(), 'keepsake-bench-reliability-'));
      return spec(directory);
    },
    tearDown: () => rm(directory, { recursive: true, force: true }),
  });
  const database = (dialect: 'postgres' | 'mysql', port: number): Target => {
    const table = uniqueName(`keepsake_reliability_${dialect}`);
    return {
      name: dialect === 'postgres' ? 'database (PostgreSQL)' : 'database (MariaDB)',
      port,
      async setUp() {
        await createTable(dialect, table, false);
        return { kind: 'database', url: urlOf(dialect), table };
      },
      tearDown: () => dropTable(dialect, table),
    };
  };
  return [
    inDirectory('file (flock)', (dir) => ({ kind: 'file', directory: dir, lock: 'flock' })),
    inDirectory('file (mkdir)', (dir) => ({ kind: 'file', directory: dir, lock: 'mkdir' })),
    database('postgres', 5432),
    database('mysql', 3306),
    {
      name: 'redis',
      port: 6379,
      setUp: async () => ({
        kind: 'redis',
        url: `tcp://127.0.0.1:6379?prefix=${uniqueName('reliability', ':')}:`,
      }),
      tearDown: async () => {},
    },
    {
      name: 'memcached',
      port: 11211,
      setUp: async () => ({ kind: 'memcached', servers: '127.0.0.1:11211' }),
      tearDown: async () => {},
    },
    inDirectory('sqlite', (dir) => ({ kind: 'sqlite', path: join(dir, 'sessions.db') })),
  ];
}

const median = (values: number[]) =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;

/** Writes a session of the driver's largest allowed size, then times lock + read + unlock of it. */
async function largestPayloadRead(spec: DriverSpec): Promise<string> {
  const config: SessionConfig = {
    driver: driverOf(spec),
    gcProbability: 0,
    timeToUpdate: 0,
    ioTimeout: IO_TIMEOUT_MS,
  };
  const manager = createSessionManager(config);
  const limit = manager.config.maxPayloadBytes;
  const info = (id?: string) => ({
    cookieHeader: id === undefined ? undefined : `ci_session=${id}`,
    ip: '127.0.0.1',
    ajax: false,
  });
  try {
    const first = await manager.start(info());
    first.set('big', 'x'.repeat(limit - 64));
    await manager.commit(first);
    const timings: number[] = [];
    for (let read = 0; read < READS; read += 1) {
      const started = performance.now();
      const session = await manager.start(info(first.id));
      await manager.commit(session);
      timings.push(performance.now() - started);
    }
    const ms = median(timings);
    return `${(limit / 1_000_000).toFixed(2)} MB read in ${ms.toFixed(1)} ms (${((ms / IO_TIMEOUT_MS) * 100).toFixed(1)} % of ioTimeout)`;
  } finally {
    await manager.shutdown();
  }
}

/** SIGKILLs a process holding a session's lock, then times until another process serves it. */
async function crashRecovery(spec: DriverSpec): Promise<string> {
  const config = { timeToUpdate: 0, gcProbability: 0, lockWait: 30_000 };
  const [holder, survivor] = await Promise.all([
    startCounterServer(config, { driver: spec }),
    startCounterServer(config, { driver: spec }),
  ]);
  try {
    const jar = new CookieJar();
    await (await jar.fetch(`${survivor.url}/inc`)).arrayBuffer();
    const cookie = jar.header() ?? '';
    const held = fetch(`${holder.url}/hold?ms=60000`, { headers: { cookie } }).catch(() => {});
    await holder.waitForLine('holding');
    const killedAt = performance.now();
    await holder.kill('SIGKILL');
    const response = await fetch(`${survivor.url}/inc`, { headers: { cookie } });
    await response.arrayBuffer();
    await held;
    return `${((performance.now() - killedAt) / 1000).toFixed(2)} s (status ${response.status}, default lockTtl 5 s)`;
  } finally {
    await holder.kill('SIGKILL');
    await survivor.kill('SIGKILL');
  }
}

export async function extras(): Promise<string[]> {
  const lines = [
    '- **Largest allowed session, locked and read back** (median of 5, default maxPayloadBytes per driver, ioTimeout 2 s):',
  ];
  const recovery = [
    '- **Crash recovery** (a lock holder SIGKILLed; time until another process serves the session, default settings):',
  ];
  for (const target of targets()) {
    if (target.port !== null && !(await portOpen('127.0.0.1', target.port))) {
      lines.push(`  ${target.name}: skipped, its server is not reachable`);
      continue;
    }
    const spec = await target.setUp();
    try {
      lines.push(`  ${target.name}: ${await largestPayloadRead(spec)}`);
      recovery.push(`  ${target.name}: ${await crashRecovery(spec)}`);
    } catch (error) {
      lines.push(
        `  ${target.name}: failed (${error instanceof Error ? error.message : String(error)})`,
      );
    } finally {
      await target.tearDown();
    }
  }
  return [...lines, ...recovery];
}
