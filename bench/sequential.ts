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
 * Serves `built`'s counter route in this process, opens one session (plus a warm-up request), then
 * runs `count` sequential requests on it between `counter.start()` and `counter.stop()`, and
 * answers what the counter saw. Closes the app afterwards.
 */
export async function countSequentialRequests<Counts>(
  built: BenchApp,
  count: number,
  counter: StoreCounter<Counts>,
): Promise<Counts> {
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
    const warmup = await fetch(url, { headers: { cookie } });
    await warmup.arrayBuffer();
    await counter.start();
    for (let index = 0; index < count; index += 1) {
      const response = await fetch(url, { headers: { cookie } });
      await response.arrayBuffer();
    }
    return await counter.stop();
  } finally {
    server.close();
    await built.close?.();
  }
}
