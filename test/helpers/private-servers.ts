/**
 * Store servers of a test's own, on spare loopback ports, for the fault tests: stop, restart,
 * freeze (SIGSTOP) and thaw. Only these are ever stopped — never the machine's shared servers.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { chown, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startMemcached } from '../drivers/memcached/servers.js';
import { startPrivateRedis } from '../drivers/redis/servers.js';
import { canConnect, servicesRequired } from './services.js';

const run = promisify(execFile);
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export type PrivateStoreKind = 'redis' | 'memcached' | 'postgres' | 'mariadb';

/** A store server this test process started and owns. */
export interface PrivateServer {
  readonly kind: PrivateStoreKind;
  readonly port: number;
  /** How a driver reaches it: a URL, or a memcached server list. */
  readonly address: string;
  /** SIGKILL (an outage); waits until the process is gone. */
  kill(): Promise<void>;
  /** Starts it again on the same port with the same data directory. */
  restart(): Promise<void>;
  /** SIGSTOP: connections stay open but nothing is answered. */
  freeze(): Promise<void>;
  /** SIGCONT after freeze(). */
  thaw(): Promise<void>;
  /** Kills it and removes its files. */
  stop(): Promise<void>;
}

async function waitForPort(port: number, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await canConnect('127.0.0.1', port, 200))) {
    if (Date.now() > deadline)
      throw new Error(`${what} did not listen on ${port} in ${timeoutMs} ms`);
    await pause(50);
  }
}

/** The PIDs of `pid`'s descendants (PostgreSQL's backends start sessions of their own, so no process group holds them all). */
async function descendants(pid: number): Promise<number[]> {
  const { stdout } = await run('pgrep', ['-P', String(pid)]).catch(() => ({ stdout: '' }));
  const children = stdout
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map(Number);
  const nested = await Promise.all(children.map((child) => descendants(child)));
  return [...children, ...nested.flat()];
}

/** Signals a process and every descendant of it. */
async function signalTree(pid: number, signal: NodeJS.Signals): Promise<void> {
  const pids = [pid, ...(await descendants(pid))];
  for (const target of pids) {
    try {
      process.kill(target, signal);
    } catch {
      // Gone already.
    }
  }
}

/** A server run as our child, signalled with all its descendants (a postmaster and its backends). */
class ChildServer {
  #child: ChildProcess | undefined;
  readonly #launch: () => ChildProcess;

  constructor(launch: () => ChildProcess) {
    this.#launch = launch;
  }

  start(): void {
    const child = this.#launch();
    child.once('error', () => {});
    const killOnExit = () => child.kill('SIGKILL');
    process.once('exit', killOnExit);
    child.once('exit', () => process.off('exit', killOnExit));
    this.#child = child;
  }

  async kill(): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    if (child?.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    const tree = [child.pid, ...(await descendants(child.pid))];
    for (const pid of tree) {
      try {
        process.kill(pid, 'SIGCONT');
        process.kill(pid, 'SIGKILL');
      } catch {
        // Gone already.
      }
    }
    await exited;
    for (const pid of tree) {
      for (let attempt = 0; attempt < 100 && alive(pid); attempt += 1) await pause(20);
    }
  }

  signal(signal: NodeJS.Signals): Promise<void> {
    const pid = this.#child?.pid;
    if (pid === undefined) throw new Error('the private server is not running');
    return signalTree(pid, signal);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const POSTGRES_BIN = '/usr/lib/postgresql/15/bin';

/** A PostgreSQL cluster in a temp directory, run as the postgres user, trust auth, no fsync. */
async function startPostgres(port: number): Promise<PrivateServer> {
  const dir = await mkdtemp(join(tmpdir(), `keepsake-pg-${port}-`));
  const data = join(dir, 'data');
  await chown(dir, ...(await ids('postgres')));
  await run('runuser', [
    '-u',
    'postgres',
    '--',
    `${POSTGRES_BIN}/initdb`,
    '-D',
    data,
    '-A',
    'trust',
    '-U',
    'postgres',
    '--no-sync',
  ]);
  const server = new ChildServer(() =>
    spawn(
      'runuser',
      [
        '-u',
        'postgres',
        '--',
        `${POSTGRES_BIN}/postgres`,
        '-D',
        data,
        '-p',
        String(port),
        '-k',
        dir,
        '-c',
        'listen_addresses=127.0.0.1',
        '-c',
        'fsync=off',
      ],
      { stdio: 'ignore' },
    ),
  );
  return childBacked(
    'postgres',
    port,
    `postgres://postgres@127.0.0.1:${port}/postgres`,
    server,
    dir,
    'PostgreSQL',
    [`${POSTGRES_BIN}/pg_isready`, '-q', '-h', '127.0.0.1', '-p', String(port)],
  );
}

/** A MariaDB in a temp directory, root without a password, no binary log. */
async function startMariadb(port: number): Promise<PrivateServer> {
  const dir = await mkdtemp(join(tmpdir(), `keepsake-mariadb-${port}-`));
  const data = join(dir, 'data');
  await chown(dir, ...(await ids('mysql')));
  await run('mariadb-install-db', [
    '--user=mysql',
    `--datadir=${data}`,
    '--auth-root-authentication-method=normal',
    '--skip-test-db',
  ]);
  const server = new ChildServer(() =>
    spawn(
      'mariadbd',
      [
        '--user=mysql',
        `--datadir=${data}`,
        `--port=${port}`,
        '--bind-address=127.0.0.1',
        `--socket=${join(dir, 'sock')}`,
        `--pid-file=${join(dir, 'pid')}`,
        '--skip-log-bin',
        '--innodb-buffer-pool-size=16M',
        '--innodb-flush-log-at-trx-commit=0',
      ],
      { stdio: 'ignore' },
    ),
  );
  const created = await childBacked(
    'mariadb',
    port,
    `mysql://root@127.0.0.1:${port}/mysql`,
    server,
    dir,
    'MariaDB',
    ['mariadb-admin', '-h127.0.0.1', `-P${port}`, '-uroot', 'ping'],
  );
  await run('mariadb', [
    '-h127.0.0.1',
    `-P${port}`,
    '-uroot',
    '-e',
    'CREATE DATABASE IF NOT EXISTS test',
  ]);
  return { ...created, address: `mysql://root@127.0.0.1:${port}/test` };
}

async function ids(user: string): Promise<[number, number]> {
  const { stdout } = await run('id', ['-u', user]);
  const { stdout: group } = await run('id', ['-g', user]);
  return [Number(stdout.trim()), Number(group.trim())];
}

async function childBacked(
  kind: PrivateStoreKind,
  port: number,
  address: string,
  server: ChildServer,
  dir: string,
  label: string,
  ready: string[],
): Promise<PrivateServer> {
  const launch = async () => {
    if (await canConnect('127.0.0.1', port, 200)) throw new Error(`port ${port} is already in use`);
    server.start();
    await waitForPort(port, label);
    // Listening is not accepting sessions yet (PostgreSQL answers "starting up" for a while).
    const [command = '', ...args] = ready;
    for (let attempt = 0; ; attempt += 1) {
      try {
        await run(command, args);
        return;
      } catch (error) {
        if (attempt > 200) throw error;
        await pause(50);
      }
    }
  };
  await launch();
  return {
    kind,
    port,
    address,
    kill: () => server.kill(),
    restart: launch,
    freeze: () => server.signal('SIGSTOP'),
    thaw: () => server.signal('SIGCONT'),
    stop: async () => {
      await server.kill();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Starts a private server of `kind` on `port`. */
export async function startPrivateServer(
  kind: PrivateStoreKind,
  port: number,
): Promise<PrivateServer> {
  switch (kind) {
    case 'postgres':
      return startPostgres(port);
    case 'mariadb':
      return startMariadb(port);
    case 'redis': {
      const redis = await startPrivateRedis(port);
      const signal = (name: NodeJS.Signals) =>
        run('pkill', [`-${name.replace('SIG', '')}`, '-f', `redis-server 127.0.0.1:${port}`]).catch(
          () => {},
        );
      return {
        kind,
        port,
        address: `tcp://127.0.0.1:${port}`,
        kill: () => redis.kill(),
        restart: () => redis.restart(),
        freeze: async () => {
          await signal('SIGSTOP');
        },
        thaw: async () => {
          await signal('SIGCONT');
        },
        stop: () => redis.stop(),
      };
    }
    case 'memcached': {
      const memcached = await startMemcached(port);
      return {
        kind,
        port,
        address: memcached.address,
        kill: () => memcached.stop(),
        restart: () => memcached.restart(),
        freeze: () => memcached.pause(),
        thaw: async () => memcached.resume(),
        stop: () => memcached.stop(),
      };
    }
  }
}

/** The programs a private server of `kind` needs; a skip reason when one is missing (a failure under KEEPSAKE_REQUIRE_SERVICES=1). */
export async function privateServerSkip(kind: PrivateStoreKind): Promise<string | false> {
  const program = {
    postgres: `${POSTGRES_BIN}/postgres`,
    mariadb: 'mariadbd',
    redis: 'redis-server',
    memcached: 'memcached',
  }[kind];
  try {
    await run('sh', ['-c', `command -v ${program}`]);
    return false;
  } catch {
    const message = `${program} is not installed, so no private ${kind} server can be started`;
    if (servicesRequired)
      throw new Error(`${message}, and KEEPSAKE_REQUIRE_SERVICES=1 requires it.`);
    process.stderr.write(`\n*** SKIPPING private ${kind} tests: ${message}. ***\n\n`);
    return `${message} (skipped; set KEEPSAKE_REQUIRE_SERVICES=1 to make this a failure)`;
  }
}
