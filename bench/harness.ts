import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import type { RequestHandler } from 'express';

/** One app under test, built inside the bench server process. */
export interface BenchApp {
  /** Session middleware, or null for the bare app. */
  middleware: RequestHandler | null;
  /** The counter stored in the request's session. */
  read(request: IncomingMessage): number | Promise<number>;
  write(request: IncomingMessage, value: number): void;
  close?(): Promise<void>;
}

export type BenchApps = Record<string, () => Promise<BenchApp>>;

/** keepsake vs the library a user would pick instead, on the same store. */
export interface BenchGroup {
  title: string;
  keepsake: string;
  peer: string;
  /**
   * A further app shown for comparison: the minimal middleware, the floor any session library
   * sits on in this framework. It stores nothing, so it is loaded like the bare app (no cookies, no
   * lost-update count).
   */
  reference?: string;
  /** A server the group needs; the group is skipped with a notice when it is unreachable. */
  requires?: { name: string; host: string; port: number };
}

/** What a bench file exports. */
export interface BenchModule {
  apps: BenchApps;
  groups: BenchGroup[];
  extras?(): Promise<string[]>;
}

export interface LoadResult {
  app: string;
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  failures: number;
  /** Increments lost out of `increments` parallel ones on one session (null for the bare app). */
  lostUpdates: number | null;
  increments: number;
}

export const settings = {
  durationSeconds: Number(process.env.BENCH_DURATION ?? 5),
  connections: Number(process.env.BENCH_CONNECTIONS ?? 64),
  sessions: Number(process.env.BENCH_SESSIONS ?? 1000),
  increments: Number(process.env.BENCH_INCREMENTS ?? 200),
  /** Each app is measured this many times, interleaved with the others; the median run counts. */
  rounds: Math.max(1, Number(process.env.BENCH_ROUNDS ?? 3)),
};

const serverScript = fileURLToPath(new URL('./server.ts', import.meta.url));

/** How to start one app's server process: a script that prints `listening <port>`. */
export interface ServerCommand {
  script: string;
  env: Record<string, string>;
}

interface RunningServer {
  url: string;
  child: ChildProcess;
}

async function startServer(appName: string, command: ServerCommand): Promise<RunningServer> {
  // BENCH_PROFILE=<dir>: each server process writes a V8 CPU profile there when it exits.
  const profile = process.env.BENCH_PROFILE;
  const profiling = profile === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${profile}`];
  const child = spawn(process.execPath, [...profiling, '--import', 'tsx', command.script], {
    env: { ...process.env, ...command.env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    let output = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk;
      const match = /listening (\d+)/.exec(output);
      if (match?.[1] !== undefined) resolve(Number(match[1]));
    });
    child.once('exit', (code) =>
      reject(new Error(`bench server "${appName}" exited with ${code}`)),
    );
  });
  return { url: `http://127.0.0.1:${port}`, child };
}

async function stopServer(server: RunningServer): Promise<void> {
  if (server.child.exitCode !== null) return;
  const exited = once(server.child, 'exit');
  server.child.kill('SIGTERM');
  const timer = setTimeout(() => server.child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

/** The `name=value` of the first Set-Cookie of a response, if any. */
function sessionCookieOf(response: Response): string | undefined {
  const [first] = response.headers.getSetCookie();
  return first?.split(';')[0];
}

/** Opens `count` sessions (one request each without a cookie) and returns their cookies. */
async function openSessions(url: string, count: number): Promise<string[]> {
  const cookies: string[] = [];
  const batch = 32;
  for (let started = 0; started < count; started += batch) {
    const responses = await Promise.all(
      Array.from({ length: Math.min(batch, count - started) }, () => fetch(url)),
    );
    for (const response of responses) {
      await response.arrayBuffer();
      const cookie = sessionCookieOf(response);
      if (cookie !== undefined) cookies.push(cookie);
    }
  }
  return cookies;
}

async function countOf(response: Response): Promise<number> {
  const body = (await response.json()) as { count?: unknown };
  return Number(body.count);
}

/** N parallel increments on one session; returns how many were lost. */
async function lostUpdates(url: string, increments: number): Promise<number> {
  const first = await fetch(url);
  const cookie = sessionCookieOf(first);
  const start = await countOf(first);
  if (cookie === undefined) throw new Error('the app set no session cookie');
  const headers = { cookie };
  const responses = await Promise.all(
    Array.from({ length: increments }, () => fetch(url, { headers })),
  );
  await Promise.all(responses.map((response) => response.arrayBuffer()));
  const final = await countOf(await fetch(url, { headers }));
  return start + increments + 1 - final;
}

/**
 * Runs the counter load against one app in its own server process: `settings.sessions` sessions
 * in rotation (none for a bare app), then the lost-update count.
 */
export async function measureServer(
  appName: string,
  command: ServerCommand,
  sessionless: boolean,
): Promise<LoadResult> {
  const server = await startServer(appName, command);
  try {
    const cookies = sessionless ? [] : await openSessions(`${server.url}/`, settings.sessions);
    if (!sessionless && cookies.length === 0) throw new Error(`${appName} set no session cookies`);
    let next = 0;
    const load = (duration: number) =>
      autocannon({
        url: server.url,
        connections: settings.connections,
        duration,
        requests: [
          {
            method: 'GET',
            path: '/',
            setupRequest: (request) => {
              if (sessionless) return request;
              const cookie = cookies[next++ % cookies.length];
              return { ...request, headers: { ...request.headers, cookie } };
            },
          },
        ],
      });
    await load(1);
    const result = await load(settings.durationSeconds);
    return {
      app: appName,
      requestsPerSecond: result.requests.average,
      p50Ms: result.latency.p50,
      p99Ms: result.latency.p99,
      failures: result.non2xx + result.errors + result.timeouts,
      lostUpdates: sessionless ? null : await lostUpdates(`${server.url}/`, settings.increments),
      increments: settings.increments,
    };
  } finally {
    await stopServer(server);
  }
}

/** Runs the counter load against one app of a bench file, served by bench/server.ts. */
export function measure(
  modulePath: string,
  appName: string,
  sessionless = appName === 'bare',
): Promise<LoadResult> {
  const env = { BENCH_MODULE: modulePath, BENCH_APP: appName };
  return measureServer(appName, { script: serverScript, env }, sessionless);
}

/**
 * Measures every app `settings.rounds` times, round-robin (so a slow spell of the machine hits all
 * of them alike), and answers each app's median run by requests/s; its lost updates and failures
 * are the sums over all rounds.
 */
export async function measureRounds(
  appNames: readonly string[],
  measureOne: (appName: string) => Promise<LoadResult>,
  progress: (text: string) => void = () => {},
): Promise<Map<string, LoadResult>> {
  const runs = new Map<string, LoadResult[]>(appNames.map((name) => [name, []]));
  for (let round = 1; round <= settings.rounds; round += 1) {
    for (const name of appNames) {
      runs.get(name)?.push(await measureOne(name));
      progress(`${name} ${round}/${settings.rounds} ✓ `);
    }
  }
  const medians = new Map<string, LoadResult>();
  for (const [name, results] of runs) {
    const sorted = [...results].sort((a, b) => a.requestsPerSecond - b.requestsPerSecond);
    const median = sorted[Math.floor((sorted.length - 1) / 2)];
    if (median === undefined) continue;
    const lost = results.map((result) => result.lostUpdates);
    medians.set(name, {
      ...median,
      failures: results.reduce((sum, result) => sum + result.failures, 0),
      lostUpdates: lost.includes(null) ? null : lost.reduce<number>((sum, n) => sum + (n ?? 0), 0),
      increments: results.reduce((sum, result) => sum + result.increments, 0),
    });
  }
  return medians;
}
