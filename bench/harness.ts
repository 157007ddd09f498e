import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import type { RequestHandler } from 'express';
import type { CountingStore } from './counts.js';
import {
  COUNT_PATH,
  planRequest,
  type SessionAccess,
  type Workload,
  type WorkloadName,
} from './workloads.js';

/** One app under test, built inside the bench server process. */
export interface BenchApp {
  /** Session middleware, or null for the bare app. */
  middleware: RequestHandler | null;
  /** How the routes reach the request's session (null: the app keeps none). */
  session: SessionAccess | null;
  close?(): Promise<void>;
}

/** The store server an app talks to: the shared one, or a private one on `port` (counted phase). */
export interface StoreAddress {
  port?: number;
}

export type BenchApps = Record<string, (store: StoreAddress) => Promise<BenchApp>>;

/** keepsake vs the library a user would pick instead, on the same store. */
export interface BenchGroup {
  title: string;
  keepsake: string;
  peer: string;
  /** The app without sessions on the same framework (default: bare Express, "bare"). */
  bare?: string;
  /**
   * A further app shown for comparison: the minimal middleware, the floor any session library
   * sits on in this framework. It stores nothing, so it is loaded like the bare app (no cookies, no
   * lost-update count).
   */
  reference?: string;
  /** A server the group needs; the group is skipped with a notice when it is unreachable. */
  requires?: { name: string; host: string; port: number };
  /** The script serving the group's apps (default: bench/server.ts, Express). */
  server?: string;
  /** Starts the private store whose counters the counted phase reads; none for in-process stores. */
  countingStore?(): Promise<CountingStore>;
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
  /** Writes lost out of `parallelWrites` sent at once on one session (null: not checked). */
  lostUpdates: number | null;
  parallelWrites: number;
}

/** BENCH_SMOKE=1 shrinks every default, for a run of a few minutes that only proves it works. */
const smoke = process.env.BENCH_SMOKE === '1';

function setting(name: string, full: number, quick: number): number {
  const value = Number(process.env[name] ?? (smoke ? quick : full));
  if (!Number.isFinite(value) || value < 0) throw new Error(`bench: ${name} must be a number ≥ 0`);
  return value;
}

export const settings = {
  smoke,
  durationSeconds: setting('BENCH_DURATION', 3, 0.5),
  warmupSeconds: setting('BENCH_WARMUP', 0.5, 0.2),
  connections: setting('BENCH_CONNECTIONS', 64, 64),
  sessions: Math.max(1, setting('BENCH_SESSIONS', 1000, 50)),
  /** Requests sent at once on one session after each run, to count lost updates. */
  parallelRequests: setting('BENCH_INCREMENTS', 200, 20),
  /** Each app is measured this many times, interleaved with the others; the median run counts. */
  rounds: Math.max(1, setting('BENCH_ROUNDS', 3, 1)),
  /** Sequential requests per app and workload in the counted phase, over `countedSessions`. */
  countedRequests: Math.max(1, setting('BENCH_COUNTED_REQUESTS', 100, 20)),
  countedSessions: 10,
  /** Requests on one session in the lock-handoff extra. */
  handoffRequests: Math.max(1, setting('BENCH_HANDOFF_REQUESTS', 100, 20)),
  gcFiles: setting('BENCH_GC_FILES', 100_000, 5_000),
};

const serverScript = fileURLToPath(new URL('./server.ts', import.meta.url));

/** A name for what an app creates on a shared server (keys, tables): no other run can meet it. */
export function uniqueName(label: string, separator = '_'): string {
  return ['keepsake', 'bench', label, randomBytes(3).toString('hex')].join(separator);
}

export function portOpen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    socket.setTimeout(1_000, () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** How to start one app's server process: a script that prints `listening <port>`. */
export interface ServerCommand {
  script: string;
  env: Record<string, string>;
}

export interface RunningServer {
  url: string;
  pid: number;
  child: ChildProcess;
}

export async function startServer(appName: string, command: ServerCommand): Promise<RunningServer> {
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
  return { url: `http://127.0.0.1:${port}`, pid: child.pid ?? 0, child };
}

export async function stopServer(server: RunningServer): Promise<void> {
  if (server.child.exitCode !== null) return;
  const exited = once(server.child, 'exit');
  server.child.kill('SIGTERM');
  const timer = setTimeout(() => server.child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

/** The server command of one app of a group. */
export function serverCommand(
  group: BenchGroup,
  modulePath: string,
  appName: string,
  env: Record<string, string> = {},
): ServerCommand {
  return {
    script: group.server ?? serverScript,
    env: { BENCH_MODULE: modulePath, BENCH_APP: appName, ...env },
  };
}

export const bareOf = (group: BenchGroup) => group.bare ?? 'bare';

/** The apps of a group that keep no session: loaded without cookies, no lost-update check. */
export const isSessionless = (group: BenchGroup, appName: string) =>
  appName === bareOf(group) || appName === group.reference;

/** The `name=value` pairs of a response's Set-Cookie headers, as one Cookie header. */
function cookiesOf(response: Response): string {
  return response.headers
    .getSetCookie()
    .map((line) => line.split(';')[0])
    .join('; ');
}

/** Sends `count` requests to `url` without a cookie and answers the sessions they opened. */
export async function openSessions(url: string, count: number): Promise<string[]> {
  const cookies: string[] = [];
  const batch = 32;
  for (let started = 0; started < count; started += batch) {
    const responses = await Promise.all(
      Array.from({ length: Math.min(batch, count - started) }, () => fetch(url)),
    );
    for (const response of responses) {
      await response.arrayBuffer();
      const cookie = cookiesOf(response);
      if (!response.ok || cookie === '') {
        throw new Error(`opening a session at ${url} answered ${response.status} without a cookie`);
      }
      cookies.push(cookie);
    }
  }
  return cookies;
}

async function countOf(url: string, cookie: string): Promise<number> {
  const response = await fetch(url, { headers: { cookie } });
  const body = (await response.json()) as { count?: unknown };
  return Number(body.count);
}

/**
 * The lost-update check: `settings.parallelRequests` of the workload's requests sent at once on one
 * fresh session; the writes among them that the stored counter does not show were lost.
 */
async function lostUpdates(
  url: string,
  workload: Workload,
): Promise<{ lost: number; writes: number }> {
  const [cookie] = await openSessions(`${url}${workload.openPath}`, 1);
  if (cookie === undefined) throw new Error('the app opened no session');
  const start = await countOf(`${url}${COUNT_PATH}`, cookie);
  const planned = Array.from({ length: settings.parallelRequests }, (_, index) =>
    planRequest(workload, index, 1),
  );
  const responses = await Promise.all(
    planned.map(({ path }) => fetch(`${url}${path}`, { headers: { cookie } })),
  );
  await Promise.all(responses.map((response) => response.arrayBuffer()));
  const writes = planned.filter((request) => request.writes).length;
  return { lost: start + writes - (await countOf(`${url}${COUNT_PATH}`, cookie)), writes };
}

/**
 * One workload against a running app: `settings.sessions` prepared sessions in rotation (none for
 * new-visitors and the sessionless apps), a warm-up, the timed load, then the lost-update check.
 */
async function loadWorkload(
  url: string,
  appName: string,
  workload: Workload,
  sessionless: boolean,
): Promise<LoadResult> {
  const cookies =
    sessionless || workload.openPath === null
      ? []
      : await openSessions(`${url}${workload.openPath}`, settings.sessions);
  let next = 0;
  const load = (duration: number) =>
    autocannon({
      url,
      connections: settings.connections,
      duration,
      requests: [
        {
          method: 'GET',
          setupRequest: (request) => {
            const planned = planRequest(workload, next++, cookies.length);
            const cookie = planned.session === null ? undefined : cookies[planned.session];
            return {
              ...request,
              path: planned.path,
              headers: cookie === undefined ? request.headers : { ...request.headers, cookie },
            };
          },
        },
      ],
    });
  if (settings.warmupSeconds > 0) await load(settings.warmupSeconds);
  const result = await load(settings.durationSeconds);
  const checked =
    sessionless || workload.writes === 'none' || settings.parallelRequests === 0
      ? null
      : await lostUpdates(url, workload);
  return {
    app: appName,
    requestsPerSecond: result.requests.total / Math.max(result.duration, 0.001),
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    failures: result.non2xx + result.errors + result.timeouts,
    lostUpdates: checked?.lost ?? null,
    parallelWrites: checked?.writes ?? 0,
  };
}

/**
 * Runs the workloads against one app of a group in one server process, in their order. A
 * sessionless app does the same for every workload, so it runs the first one only.
 */
export async function measureApp(
  group: BenchGroup,
  modulePath: string,
  appName: string,
  workloads: readonly Workload[],
): Promise<Map<WorkloadName, LoadResult>> {
  const sessionless = isSessionless(group, appName);
  const server = await startServer(appName, serverCommand(group, modulePath, appName));
  try {
    const results = new Map<WorkloadName, LoadResult>();
    for (const workload of sessionless ? workloads.slice(0, 1) : workloads) {
      results.set(workload.name, await loadWorkload(server.url, appName, workload, sessionless));
    }
    return results;
  } finally {
    await stopServer(server);
  }
}

/**
 * Measures every app `settings.rounds` times, round-robin (so a slow spell of the machine hits all
 * of them alike), and answers each app's median run per workload by requests/s; its lost updates
 * and failures are the sums over all rounds.
 */
export async function measureRounds(
  appNames: readonly string[],
  measureOne: (appName: string) => Promise<Map<WorkloadName, LoadResult>>,
  progress: (text: string) => void = () => {},
): Promise<Map<string, Map<WorkloadName, LoadResult>>> {
  const runs = new Map<string, Map<WorkloadName, LoadResult>[]>(appNames.map((name) => [name, []]));
  for (let round = 1; round <= settings.rounds; round += 1) {
    for (const name of appNames) {
      runs.get(name)?.push(await measureOne(name));
      progress(`${name} ${round}/${settings.rounds} ✓ `);
    }
  }
  const medians = new Map<string, Map<WorkloadName, LoadResult>>();
  for (const [name, rounds] of runs) {
    const byWorkload = new Map<WorkloadName, LoadResult>();
    for (const workload of rounds[0]?.keys() ?? []) {
      const results = rounds.flatMap((round) => round.get(workload) ?? []);
      const sorted = [...results].sort((a, b) => a.requestsPerSecond - b.requestsPerSecond);
      const median = sorted[Math.floor((sorted.length - 1) / 2)];
      if (median === undefined) continue;
      const lost = results.map((result) => result.lostUpdates);
      byWorkload.set(workload, {
        ...median,
        failures: results.reduce((sum, result) => sum + result.failures, 0),
        lostUpdates: lost.includes(null)
          ? null
          : lost.reduce<number>((sum, n) => sum + (n ?? 0), 0),
        parallelWrites: results.reduce((sum, result) => sum + result.parallelWrites, 0),
      });
    }
    medians.set(name, byWorkload);
  }
  return medians;
}
