import { createRequire } from 'node:module';
import { FakeClock } from '../clock.js';
import type { DriverContext, SessionDriver, SessionStore } from '../drivers/contract.js';
import type { SessionLogger } from '../log.js';
import { lifecycleInvariants } from './conformance-lifecycle.js';
import { securityGuarantees } from './conformance-security.js';
import { storePrimitives } from './conformance-store.js';
import { userGuarantees } from './conformance-users.js';

/** The driver under test. */
export interface ConformanceTarget {
  /** A new driver; called once per test. */
  driver(): SessionDriver | Promise<SessionDriver>;
  /**
   * 'clock': the store decides expiry with `context.clock` (tested with a fake clock).
   * 'real': the store expires records by its own real-time TTL (tested by waiting).
   */
  expiry: 'clock' | 'real';
  /** Runs after each test (e.g. to remove the files or rows it made). */
  cleanup?(): Promise<void>;
}

/**
 * The test functions the suite registers its cases with: node:test's by default, or your runner's
 * (`import { describe, it } from 'vitest'`, or jest's globals). Cases use node:assert, whose
 * failures every runner reports.
 */
export interface TestFunctions {
  describe(name: string, body: () => void): unknown;
  it(name: string, body: () => Promise<void>): unknown;
}

/** An opened store with the context it was opened with. */
export interface StoreHarness {
  readonly store: SessionStore;
  readonly driver: SessionDriver;
  readonly context: DriverContext;
  /** Drives `context.clock` when the target's expiry is 'clock'. */
  readonly clock: FakeClock;
  /** Every warning and error the store logged. */
  readonly warnings: string[];
}

export const recordingLogger = (warnings: string[]): SessionLogger => ({
  debug: () => {},
  warn: (message) => warnings.push(message),
  error: (message) => warnings.push(message),
});

/** The settings the suite opens stores with, unless a case says otherwise. */
export const SUITE_CONTEXT = {
  cookieName: 'ci_session',
  matchIP: false,
  lifetimeSeconds: 60,
  lockTtlMs: 1_000,
  ioTimeoutMs: 2_000,
} as const;

/** Opens a fresh store of `target` with the suite's settings (or `overrides`). */
export async function openStore(
  target: ConformanceTarget,
  overrides: Partial<DriverContext> = {},
): Promise<StoreHarness> {
  const driver = await target.driver();
  const clock = new FakeClock(Date.now());
  const warnings: string[] = [];
  const context: DriverContext = {
    ...SUITE_CONTEXT,
    clock: target.expiry === 'clock' ? clock.now : () => Date.now(),
    logger: recordingLogger(warnings),
    ...overrides,
  };
  const store = await driver.open(context);
  return { store, driver, context, clock, warnings };
}

/**
 * The driver contract's test suite, run against every built-in driver and exported for yours:
 * `runConformanceSuite('my driver', { driver: () => myDriver(), expiry: 'clock' })` in a node:test
 * file, or with `{ describe, it }` from vitest or jest as the third argument. It checks the store
 * primitives one by one, then the guarantees keepsake makes on top of them with your store: no
 * write after a lost lock, no data lost to a failed write, no lock left by an abandoned attempt or
 * a failure on the way into a request, corrupt records replaced, and the largest payload served.
 */
export function runConformanceSuite(
  name: string,
  target: ConformanceTarget,
  functions?: TestFunctions,
): void {
  // Loaded only when no runner's functions are given: jest cannot load node:test.
  const test = functions ?? (createRequire(import.meta.url)('node:test') as TestFunctions);
  test.describe(`${name}: driver conformance`, () => {
    storePrimitives(target, test);
    lifecycleInvariants(target, test);
    securityGuarantees(target, test);
    userGuarantees(target, test);
  });
}
