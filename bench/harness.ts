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
};

const serverScript = fileURLToPath(new URL('./server.ts', import.meta.url));

interface RunningServer {
  url: string;
  child: ChildProcess;
}

/** Starts bench/server.ts in its own process, serving `appName` from the bench file `modulePath`. */
async function startServer(modulePath: string, appName: string): Promise<RunningServer> {
  const child = spawn(process.execPath, ['--import', 'tsx', serverScript], {
    env: { ...process.env, BENCH_MODULE: modulePath, BENCH_APP: appName },
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

/** Runs the counter load against one app in its own server process. */
export async function measure(modulePath: string, appName: string): Promise<LoadResult> {
  const server = await startServer(modulePath, appName);
  try {
    const isBare = appName === 'bare';
    const cookies = isBare ? [] : await openSessions(`${server.url}/`, settings.sessions);
    if (!isBare && cookies.length === 0) throw new Error(`${appName} set no session cookies`);
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
              if (isBare) return request;
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
      lostUpdates: isBare ? null : await lostUpdates(`${server.url}/`, settings.increments),
      increments: settings.increments,
    };
  } finally {
    await stopServer(server);
  }
}
