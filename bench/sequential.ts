import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import express from 'express';
import type { BenchApp } from './harness.js';

/** What the store counts around the measured requests (commands, statements). */
export interface StoreCounter<Counts> {
  /** Called after the warm-up, right before the measured requests. */
  start(): Promise<void> | void;
  /** Called right after them: what the store counted for them. */
  stop(): Promise<Counts> | Counts;
}

/**
 * Serves `built`'s counter route in this process, opens one session (plus a warm-up request) and
 * hands its URL and cookie to `use`; closes the server and the app afterwards.
 */
async function withOneSession<Result>(
  built: BenchApp,
  use: (url: string, cookie: string) => Promise<Result>,
): Promise<Result> {
  const app = express();
  if (built.middleware !== null) app.use(built.middleware);
  app.get('/', async (request, response) => {
    const value = (await built.read(request)) + 1;
    built.write(request, value);
    response.json({ count: value });
  });
  const server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  try {
    const first = await fetch(url);
    await first.arrayBuffer();
    const cookie = first.headers
      .getSetCookie()
      .map((line) => line.split(';')[0])
      .join('; ');
    await get(url, cookie);
    return await use(url, cookie);
  } finally {
    server.close();
    await built.close?.();
  }
}

async function get(url: string, cookie: string): Promise<void> {
  const response = await fetch(url, { headers: { cookie } });
  await response.arrayBuffer();
}

/**
 * Runs `count` sequential requests on one session of `built` between `counter.start()` and
 * `counter.stop()`, and answers what the counter saw.
 */
export function countSequentialRequests<Counts>(
  built: BenchApp,
  count: number,
  counter: StoreCounter<Counts>,
): Promise<Counts> {
  return withOneSession(built, async (url, cookie) => {
    await counter.start();
    for (let index = 0; index < count; index += 1) await get(url, cookie);
    return await counter.stop();
  });
}

export interface Handoff {
  /** Mean time of one request on the session when requests come one at a time. */
  oneRequestMs: number;
  /** Time for `requests` requests on the same session sent at once (they take turns on its lock). */
  concurrentMs: number;
  requests: number;
}

/**
 * How well the lock hands a session from one request to the next: `requests` sequential requests
 * on one session give one request's time, then `requests` concurrent ones on the same session
 * should take no longer than `requests` × that (DESIGN.md's target: at most 1.2 ×).
 */
export function measureHandoff(built: BenchApp, requests = 100): Promise<Handoff> {
  return withOneSession(built, async (url, cookie) => {
    const burst = () => Promise.all(Array.from({ length: requests }, () => get(url, cookie)));
    // A first burst opens the client's keep-alive connections, so the timed one pays no handshakes.
    await burst();
    const sequentialStarted = performance.now();
    for (let index = 0; index < requests; index += 1) await get(url, cookie);
    const oneRequestMs = (performance.now() - sequentialStarted) / requests;
    const concurrentStarted = performance.now();
    await burst();
    return { oneRequestMs, concurrentMs: performance.now() - concurrentStarted, requests };
  });
}
