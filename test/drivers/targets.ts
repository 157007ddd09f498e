/**
 * Every built-in driver that several processes can share, described once for the parameterised
 * cross-process and fault suites: how to set up its store, and the JSON a child process builds the
 * same driver from.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DriverSpec } from '../helpers/driver-spec.js';
import { serviceSkip } from '../helpers/services.js';
import { createTable, dropTable, urlOf } from './database/servers.js';
import { deleteKeys, SHARED_HOST, SHARED_PORT, uniquePrefix } from './redis/servers.js';

export interface SharedTarget {
  readonly name: string;
  /** Whether the store's locks expire (else they end with their holder: flock, a database connection's named lock). */
  readonly locksExpire: boolean;
  /** A skip reason when the store is not reachable (a failure under KEEPSAKE_REQUIRE_SERVICES=1). */
  skip(): Promise<string | false>;
  /** Prepares a fresh store (directory, table, key prefix) and answers the driver to use. */
  setUp(): Promise<DriverSpec>;
  /** Removes what setUp() made. */
  tearDown(): Promise<void>;
}

function fileTarget(lock: 'flock' | 'mkdir'): SharedTarget {
  let directory = '';
  return {
    name: `file (${lock})`,
    locksExpire: lock === 'mkdir',
    skip: async () => false,
    async setUp() {
      directory = await mkdtemp(join(tmpdir(), `keepsake-shared-${lock}-`));
      return { kind: 'file', directory, lock };
    },
    tearDown: () => rm(directory, { recursive: true, force: true }),
  };
}

function databaseTarget(dialect: 'postgres' | 'mysql'): SharedTarget {
  const table = `keepsake_shared_${dialect}_${process.pid}`;
  const label = dialect === 'postgres' ? 'PostgreSQL' : 'MariaDB';
  return {
    name: `database (${label})`,
    // A named lock held by a lock connection ends with that connection, or with its process.
    locksExpire: false,
    skip: () => serviceSkip(label, '127.0.0.1', dialect === 'postgres' ? 5432 : 3306),
    async setUp() {
      await createTable(dialect, table, false);
      return { kind: 'database', url: urlOf(dialect), table };
    },
    tearDown: () => dropTable(dialect, table),
  };
}

function redisTarget(): SharedTarget {
  const prefix = uniquePrefix('shared');
  return {
    name: 'redis',
    locksExpire: true,
    skip: () => serviceSkip('Redis', SHARED_HOST, SHARED_PORT),
    setUp: async () => ({
      kind: 'redis',
      url: `tcp://${SHARED_HOST}:${SHARED_PORT}?prefix=${prefix}`,
    }),
    tearDown: async () => {
      await deleteKeys(prefix);
    },
  };
}

function memcachedTarget(): SharedTarget {
  return {
    name: 'memcached',
    locksExpire: true,
    skip: () => serviceSkip('memcached', '127.0.0.1', 11211),
    // Every test uses new random session IDs, and memcached expires what they leave.
    setUp: async () => ({ kind: 'memcached', servers: '127.0.0.1:11211' }),
    tearDown: async () => {},
  };
}

function sqliteTarget(): SharedTarget {
  let directory = '';
  return {
    name: 'sqlite',
    locksExpire: true,
    skip: async () => false,
    async setUp() {
      directory = await mkdtemp(join(tmpdir(), 'keepsake-shared-sqlite-'));
      return { kind: 'sqlite', path: join(directory, 'sessions.db') };
    },
    tearDown: () => rm(directory, { recursive: true, force: true }),
  };
}

export const SHARED_TARGETS: readonly SharedTarget[] = [
  fileTarget('flock'),
  fileTarget('mkdir'),
  databaseTarget('postgres'),
  databaseTarget('mysql'),
  redisTarget(),
  memcachedTarget(),
  sqliteTarget(),
];
