import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { CookieJar } from './cookie-jar.js';
import type { ChildServer } from './processes.js';

/** GET with a hard bound, so a hanging request fails the test instead of stalling it. */
export async function boundedGet(
  url: string,
  cookie: string | undefined,
  boundMs: number,
): Promise<number> {
  const response = await fetch(url, {
    headers: cookie === undefined ? {} : { cookie },
    signal: AbortSignal.timeout(boundMs),
  });
  await response.arrayBuffer();
  return response.status;
}

export interface OutageScenario {
  /** A counter app (`/inc`, `/count`) on the store that goes away. */
  readonly server: ChildServer;
  /** The store's name, for assertion messages. */
  readonly storeName: string;
  /** How long a request may take before it counts as hung. */
  readonly boundMs: number;
  /** Takes the store away (kill or stop). */
  stopStore(): Promise<void>;
  /** Brings it back on the same address. */
  restartStore(): Promise<void>;
}

/**
 * Loads the app from four clients, takes the store away, and asserts that every request during the
 * outage is a 503 (none hangs), that the app process stays up, and that it serves again by itself
 * once the store is back.
 */
export async function assertOutageAndRecovery(scenario: OutageScenario): Promise<void> {
  const { server, storeName, boundMs } = scenario;
  const jar = new CookieJar();
  assert.equal(
    (await jar.fetch(`${server.url}/inc`)).status,
    200,
    'the first request, before the outage',
  );
  const cookie = jar.header();

  let stop = false;
  const outcomes: number[] = [];
  const load = Array.from({ length: 4 }, async () => {
    while (!stop) outcomes.push(await boundedGet(`${server.url}/inc`, cookie, boundMs));
  });
  await sleep(200);
  await scenario.stopStore();
  const downSince = outcomes.length;
  await sleep(800);
  stop = true;
  await Promise.all(load);
  assert.ok(outcomes.slice(0, downSince).includes(200), 'requests succeeded before the outage');
  // The four requests in flight when the store went away may have finished either way.
  const during = outcomes.slice(downSince + 4);
  assert.ok(during.length > 0, 'requests were answered during the outage');
  assert.deepEqual(
    during.filter((status) => status !== 503),
    [],
    'every request during the outage was a 503',
  );
  for (const path of ['/inc', '/count']) {
    assert.equal(
      await boundedGet(`${server.url}${path}`, cookie, boundMs),
      503,
      `${path} while down`,
    );
  }
  assert.equal(server.child.exitCode, null, 'the app process is still running');

  await scenario.restartStore();
  let status = 0;
  for (let attempt = 0; attempt < 50 && status !== 200; attempt += 1) {
    status = await boundedGet(`${server.url}/inc`, cookie, boundMs);
    if (status !== 200) await sleep(100);
  }
  assert.equal(status, 200, `the app serves again once ${storeName} is back, without a restart`);
  assert.equal(
    await boundedGet(`${server.url}/count`, cookie, boundMs),
    200,
    'a read-only request after the recovery',
  );
}
