import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { createNode, Memcache } from 'memcache';
import { canConnect, servicesRequired } from '../../helpers/services.js';

export const SHARED_HOST = '127.0.0.1';
export const SHARED_PORT = 11211;
export const SHARED_SERVER = `${SHARED_HOST}:${SHARED_PORT}`;

/** A cookie name no other test uses; it is also the key prefix of the memcached driver. */
export function uniqueCookieName(label: string): string {
  return `mc_${label}_${randomBytes(4).toString('hex')}`;
}

/** A `memcache` client on one server, for looking at keys directly. */
export function directClient(address: string): Memcache {
  // Generous: this client answers a timeout with a miss, which a loaded machine must not turn into a failure.
  return new Memcache({ nodes: [address], timeout: 10_000 });
}

/** Seconds until `key` expires on the server at host:port (meta get), -1 for never, null when absent. */
export async function remainingTtl(
  host: string,
  port: number,
  key: string,
): Promise<number | null> {
  const node = createNode(host, port, { timeout: 2_000 });
  await node.connect();
  try {
    const reply = String(await node.command(`mg ${key} t`));
    if (reply === 'EN') return null;
    const ttl = /^HD t(-?\d+)$/.exec(reply)?.[1];
    if (ttl === undefined) throw new Error(`unexpected meta get reply ${JSON.stringify(reply)}`);
    return Number(ttl);
  } finally {
    await node.disconnect();
  }
}

/** The server's own clock (`stats` time, Unix seconds), which can drift from the host's wall clock. */
export async function serverClock(host: string, port: number): Promise<number> {
  const node = createNode(host, port, { timeout: 2_000 });
  await node.connect();
  try {
    const stats = (await node.command('stats', { isStats: true })) as Record<string, string>;
    return Number(stats.time);
  } finally {
    await node.disconnect();
  }
}

/** A memcached server of the test's own on a spare loopback port (11411–11499), stopped by stop(). */
export interface OwnMemcached {
  readonly port: number;
  readonly address: string;
  /** SIGKILLs it (an outage, or the end of the test) and waits for it to exit. */
  stop(): Promise<void>;
  /** Starts it again on the same port (after stop()). */
  restart(): Promise<void>;
  /** SIGSTOP, waiting until it took effect: the server keeps its connections but stops answering. */
  pause(): Promise<void>;
  /** SIGCONT after pause(). */
  resume(): void;
}

function memcachedBinaryFound(): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = spawn('memcached', ['-V'], { stdio: 'ignore' });
    probe.once('error', () => resolve(false));
    probe.once('exit', (code) => resolve(code === 0));
  });
}

/**
 * For tests that start their own memcached: a skip reason when the binary is missing on a developer
 * machine (loudly), and a thrown error when KEEPSAKE_REQUIRE_SERVICES=1.
 */
export async function memcachedBinarySkip(): Promise<string | false> {
  if (await memcachedBinaryFound()) return false;
  const message = 'the memcached binary is not installed';
  if (servicesRequired) throw new Error(`${message}, and KEEPSAKE_REQUIRE_SERVICES=1 requires it.`);
  process.stderr.write(
    `\n*** SKIPPING memcached tests: ${message} (apt-get install memcached). ***\n\n`,
  );
  return `${message} (skipped; set KEEPSAKE_REQUIRE_SERVICES=1 to make this a failure)`;
}

async function waitUntil(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let attempt = 0; attempt < 100; attempt += 1) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** How to start a server of the test's own. */
export interface MemcachedOptions {
  /** memcached's item size limit (`-I`, e.g. '32m'); memcached's default is 1 MB. */
  readonly itemSizeMax?: string;
  /** Memory for items, in megabytes (`-m`; default 32). */
  readonly memoryMb?: number;
}

export async function startMemcached(
  port: number,
  options: MemcachedOptions = {},
): Promise<OwnMemcached> {
  const args = ['-u', 'root', '-l', '127.0.0.1', '-p', String(port)];
  args.push('-m', String(options.memoryMb ?? 32));
  if (options.itemSizeMax !== undefined) args.push('-I', options.itemSizeMax);
  let child: ChildProcess | undefined;
  const launch = async () => {
    if (await canConnect('127.0.0.1', port, 200)) {
      throw new Error(`port ${port} is already in use; stop whatever listens there and rerun`);
    }
    // In the foreground as our child, so it can be killed by its own PID and dies with the test.
    const started = spawn('memcached', args, { stdio: 'ignore' });
    started.once('error', () => {});
    // Also when the test run ends early (a failed assertion in before(), Ctrl-C).
    const killOnExit = () => started.kill('SIGKILL');
    process.once('exit', killOnExit);
    started.once('exit', () => process.off('exit', killOnExit));
    child = started;
    await waitUntil(() => canConnect('127.0.0.1', port, 200), `memcached on port ${port}`);
  };
  await launch();
  return {
    port,
    address: `127.0.0.1:${port}`,
    async stop() {
      const running = child;
      if (running === undefined || running.exitCode !== null || running.signalCode !== null) return;
      const exited = once(running, 'exit');
      running.kill('SIGKILL');
      await exited;
    },
    restart: launch,
    async pause() {
      const running = child;
      if (running?.pid === undefined) throw new Error(`memcached on port ${port} is not running`);
      running.kill('SIGSTOP');
      const stat = `/proc/${running.pid}/stat`;
      // The state is the field after the parenthesised command name; T means stopped.
      await waitUntil(async () => {
        const text = await readFile(stat, 'utf8');
        return text.slice(text.lastIndexOf(')')).startsWith(') T');
      }, `memcached on port ${port} to stop`);
    },
    resume: () => child?.kill('SIGCONT'),
  };
}
