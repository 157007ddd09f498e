/**
 * Fastify: keepsake's plugin (array driver) vs @fastify/session with its default memory store, and
 * a bare Fastify app, on the same counter route and load as the other groups.
 *
 * The harness's server (bench/server.ts) hosts Express middleware only, so this file brings a small
 * runner of its own: it starts itself as the server process (FASTIFY_BENCH_APP=<app>), loads it
 * with autocannon using the harness's `settings`, and reports through `extras()` with the harness's
 * table format.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import Fastify, { type FastifyInstance, type FastifyPluginCallback } from 'fastify';
import { session } from 'keepsake/fastify';
import type { BenchApps, BenchGroup, LoadResult } from './harness.js';
import { settings } from './harness.js';
import { markdownTable } from './report.js';

/** The Express-hosted apps of the harness: none, this file measures Fastify apps itself. */
export const apps: BenchApps = {};
export const groups: BenchGroup[] = [];

const KEEPSAKE = 'keepsake-fastify-array';
const PEER = 'fastify-session-memory';
const BARE = 'bare-fastify';
type AppName = typeof KEEPSAKE | typeof PEER | typeof BARE;

/** The counter as each app reads and writes it. */
interface Counter {
  read(request: unknown): number;
  write(request: unknown, value: number): void;
}

interface CounterSession {
  get(key: string): unknown;
  set(key: string, value: unknown): void;
}
const sessionOf = (request: unknown) => (request as { session: CounterSession }).session;
const sessionCounter: Counter = {
  read: (request) => Number(sessionOf(request).get('count') ?? 0),
  write: (request, value) => sessionOf(request).set('count', value),
};

async function buildApp(name: AppName): Promise<FastifyInstance> {
  const app = Fastify();
  let counter: Counter = { read: () => 0, write: () => {} };
  if (name === KEEPSAKE) {
    await app.register(session({ driver: 'array' }));
    counter = sessionCounter;
  } else if (name === PEER) {
    // Loaded untyped: its declaration of request.session would clash with keepsake's.
    const require = createRequire(import.meta.url);
    await app.register(require('@fastify/cookie') as FastifyPluginCallback);
    await app.register(
      require('@fastify/session') as FastifyPluginCallback<Record<string, unknown>>,
      {
        secret: 'keepsake-bench-secret-of-at-least-32-characters',
        cookie: { secure: false },
        saveUninitialized: true,
      },
    );
    counter = sessionCounter;
  }
  app.get('/', async (request) => {
    const count = counter.read(request) + 1;
    counter.write(request, count);
    return { count };
  });
  return app;
}

// ── server mode: this file started as the bench server of one app ─────────────────────────────

const serving = process.env.FASTIFY_BENCH_APP as AppName | undefined;
if (serving !== undefined) {
  const app = await buildApp(serving);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  process.stdout.write(`listening ${typeof address === 'object' && address ? address.port : 0}\n`);
  process.once('SIGTERM', () => {
    app.server.closeAllConnections();
    void app.close().finally(() => process.exit(0));
  });
}

// ── runner ───────────────────────────────────────────────────────────────────────────────────

const thisFile = fileURLToPath(import.meta.url);

async function startServer(name: AppName): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, ['--import', 'tsx', thisFile], {
    env: { ...process.env, FASTIFY_BENCH_APP: name },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    let output = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk;
      const match = /listening (\d+)/.exec(output);
      if (match?.[1] !== undefined) resolve(Number(match[1]));
    });
    child.once('exit', (code) => reject(new Error(`bench server "${name}" exited with ${code}`)));
  });
  return { url: `http://127.0.0.1:${port}`, child };
}

async function stopServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

const cookieOf = (response: Response) => response.headers.getSetCookie()[0]?.split(';')[0];

async function openSessions(url: string, count: number): Promise<string[]> {
  const cookies: string[] = [];
  for (let started = 0; started < count; started += 32) {
    const responses = await Promise.all(
      Array.from({ length: Math.min(32, count - started) }, () => fetch(url)),
    );
    for (const response of responses) {
      await response.arrayBuffer();
      const cookie = cookieOf(response);
      if (cookie !== undefined) cookies.push(cookie);
    }
  }
  return cookies;
}

async function countOf(response: Response): Promise<number> {
  return Number(((await response.json()) as { count?: unknown }).count);
}

async function lostUpdates(url: string, increments: number): Promise<number> {
  const first = await fetch(url);
  const cookie = cookieOf(first);
  const start = await countOf(first);
  if (cookie === undefined) throw new Error('the app set no session cookie');
  const responses = await Promise.all(
    Array.from({ length: increments }, () => fetch(url, { headers: { cookie } })),
  );
  await Promise.all(responses.map((response) => response.arrayBuffer()));
  const final = await countOf(await fetch(url, { headers: { cookie } }));
  return start + increments + 1 - final;
}

async function measure(name: AppName): Promise<LoadResult> {
  const { url, child } = await startServer(name);
  try {
    const bare = name === BARE;
    const cookies = bare ? [] : await openSessions(`${url}/`, settings.sessions);
    if (!bare && cookies.length === 0) throw new Error(`${name} set no session cookies`);
    let next = 0;
    const load = (duration: number) =>
      autocannon({
        url,
        connections: settings.connections,
        duration,
        requests: [
          {
            method: 'GET',
            path: '/',
            setupRequest: (request) =>
              bare
                ? request
                : {
                    ...request,
                    headers: { ...request.headers, cookie: cookies[next++ % cookies.length] },
                  },
          },
        ],
      });
    await load(1);
    const result = await load(settings.durationSeconds);
    return {
      app: name,
      requestsPerSecond: result.requests.average,
      p50Ms: result.latency.p50,
      p99Ms: result.latency.p99,
      failures: result.non2xx + result.errors + result.timeouts,
      lostUpdates: bare ? null : await lostUpdates(`${url}/`, settings.increments),
      increments: settings.increments,
    };
  } finally {
    await stopServer(child);
  }
}

/** Runs the Fastify group and returns its table (same columns as the harness's). */
export async function extras(): Promise<string[]> {
  process.stdout.write('fastify (own runner): ');
  const bare = await measure(BARE);
  process.stdout.write(`${BARE} ✓ `);
  const keepsake = await measure(KEEPSAKE);
  process.stdout.write(`${KEEPSAKE} ✓ `);
  const peer = await measure(PEER);
  process.stdout.write(`${PEER} ✓\n`);
  const group: BenchGroup = { title: 'fastify memory', keepsake: KEEPSAKE, peer: PEER };
  return [
    '**Fastify** (keepsake plugin, array driver, vs @fastify/session with its memory store; bare Fastify as the ceiling):',
    '',
    markdownTable([{ group, bare, keepsake, peer }]),
  ];
}
