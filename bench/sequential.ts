import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { expressApp } from './express-app.js';
import { type BenchApp, openSessions } from './harness.js';
import { WORKLOADS } from './workloads.js';

export interface Handoff {
  /** Mean time of one request on the session when requests come one at a time. */
  oneRequestMs: number;
  /** Time for `requests` requests on the same session sent at once (they take turns on its lock). */
  concurrentMs: number;
  requests: number;
}

async function get(url: string, cookie: string): Promise<void> {
  const response = await fetch(url, { headers: { cookie } });
  await response.arrayBuffer();
}

/**
 * How well the lock hands a session from one request to the next, with `built` served in this
 * process: `requests` sequential counter requests on one session give one request's time, then
 * `requests` concurrent ones on the same session should take no longer than `requests` × that
 * (DESIGN.md's target: at most 1.2 ×).
 */
export async function measureHandoff(built: BenchApp, requests = 100): Promise<Handoff> {
  const server = expressApp(built).listen(0, '127.0.0.1');
  await once(server, 'listening');
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const { openPath, writePath } = WORKLOADS.counter;
  const url = `${origin}${writePath}`;
  try {
    const [cookie] = await openSessions(`${origin}${openPath}`, 1);
    if (cookie === undefined) throw new Error('the app opened no session');
    const burst = () => Promise.all(Array.from({ length: requests }, () => get(url, cookie)));
    // A first burst opens the client's keep-alive connections, so the timed one pays no handshakes.
    await burst();
    const sequentialStarted = performance.now();
    for (let index = 0; index < requests; index += 1) await get(url, cookie);
    const oneRequestMs = (performance.now() - sequentialStarted) / requests;
    const concurrentStarted = performance.now();
    await burst();
    return { oneRequestMs, concurrentMs: performance.now() - concurrentStarted, requests };
  } finally {
    server.closeAllConnections();
    server.close();
    await built.close?.();
  }
}
