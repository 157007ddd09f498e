import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import type { DriverSpec } from './driver-spec.js';

export interface ChildServer {
  readonly url: string;
  readonly child: ChildProcess;
  /** Resolves when the child prints a line equal to `line`. */
  waitForLine(line: string): Promise<void>;
  /** What the child wrote to stderr so far (its log); it is also passed on to this process's stderr. */
  errorOutput(): string;
  /** Kills the child (SIGKILL simulates a crash) and waits for it to exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

const counterApp = fileURLToPath(new URL('./counter-app.ts', import.meta.url));

/** Starts test/helpers/counter-app.ts in its own process with the given session config. */
export async function startCounterServer(
  config: Record<string, unknown>,
  options: { delayMs?: number; driver?: DriverSpec } = {},
): Promise<ChildServer> {
  const child = spawn(process.execPath, ['--import', 'tsx', counterApp], {
    env: {
      ...process.env,
      KEEPSAKE_TEST_CONFIG: JSON.stringify(config),
      KEEPSAKE_TEST_DELAY: String(options.delayMs ?? 0),
      ...(options.driver === undefined
        ? {}
        : { KEEPSAKE_TEST_DRIVER: JSON.stringify(options.driver) }),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let errorOutput = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    errorOutput += chunk;
    process.stderr.write(chunk);
  });
  const waiters: { line: string; resolve: () => void }[] = [];
  let buffered = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    buffered += chunk;
    let newline = buffered.indexOf('\n');
    while (newline !== -1) {
      const line = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      lines.push(line);
      for (const waiter of waiters.filter((candidate) => candidate.line === line)) {
        waiter.resolve();
      }
      newline = buffered.indexOf('\n');
    }
  });
  const waitForLine = (line: string) =>
    new Promise<void>((resolve, reject) => {
      if (lines.includes(line)) return resolve();
      waiters.push({ line, resolve });
      child.once('exit', (code) => reject(new Error(`child exited (${code}) before "${line}"`)));
    });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('counter app did not start in 20 s')), 20_000);
    const check = () => {
      const found = lines.find((line) => line.startsWith('listening '));
      if (found === undefined) return;
      clearTimeout(timer);
      child.stdout?.off('data', check);
      resolve(Number(found.slice('listening '.length)));
    };
    child.stdout?.on('data', check);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`counter app exited with ${code} before listening`));
    });
  });
  return {
    url: `http://127.0.0.1:${port}`,
    child,
    waitForLine,
    errorOutput: () => errorOutput,
    async kill(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill(signal);
      await exited;
    },
  };
}

/**
 * Sends `perServer` concurrent `/inc` requests with `cookie` to each server, interleaved, and
 * answers the statuses that were not 200 (none, when every increment succeeded).
 */
export async function concurrentIncrements(
  servers: readonly ChildServer[],
  cookie: string,
  perServer: number,
): Promise<number[]> {
  const increment = async (url: string) => {
    const response = await fetch(`${url}/inc`, { headers: { cookie } });
    await response.arrayBuffer();
    return response.status;
  };
  const statuses = await Promise.all(
    Array.from({ length: perServer }, () => servers.map((server) => increment(server.url))).flat(),
  );
  return statuses.filter((status) => status !== 200);
}

/**
 * The port a child app prints as `listening <port>` (on stdout or stderr), and everything it printed
 * so far, for assertion messages; rejects if it exits first.
 */
export function listeningPort(
  child: ChildProcess,
  what: string,
): Promise<{ port: number; output: () => string }> {
  let output = '';
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const match = /^listening (\d+)$/m.exec(output);
      if (match !== null) resolve({ port: Number(match[1]), output: () => output });
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`${what} exited (${code}):\n${output}`)));
  });
}
