import diagnostics from 'node:diagnostics_channel';

/**
 * keepsake's events on `node:diagnostics_channel`, the convention undici and fastify follow:
 * subscribe with `diagnostics_channel.subscribe('keepsake:lock:wait', listener)` and feed your
 * metrics. Nothing is built or published while a channel has no subscriber.
 */
export const CHANNELS = {
  /** A request took a session's lock: `{ driver, waitedMs }` (0 when it was free). */
  lockWait: 'keepsake:lock:wait',
  /** A request gave up waiting for a lock (503): `{ driver, waitedMs }`. */
  lockTimeout: 'keepsake:lock:timeout',
  /** A store call failed or timed out (503): `{ driver, operation, error }`. */
  storeError: 'keepsake:store:error',
  /** The store answers again after failing: `{ driver, failures, downMs }`. */
  storeRecovered: 'keepsake:store:recovered',
  /** A new session was stored for the first time: `{ driver }`. */
  sessionCreated: 'keepsake:session:created',
  /** A session got a new ID: `{ driver, oldIdDeleted }`. */
  sessionRegenerated: 'keepsake:session:regenerated',
  /** A session was destroyed: `{ driver }`. */
  sessionDestroyed: 'keepsake:session:destroyed',
  /** A GC pass ended: `{ driver, removed, durationMs }`. */
  gc: 'keepsake:gc',
} as const;

export interface LockWaitMessage {
  readonly driver: string;
  readonly waitedMs: number;
}
export interface StoreErrorMessage {
  readonly driver: string;
  readonly operation: string;
  readonly error: unknown;
}
export interface StoreRecoveredMessage {
  readonly driver: string;
  readonly failures: number;
  readonly downMs: number;
}
export interface SessionEventMessage {
  readonly driver: string;
}
export interface RegeneratedMessage {
  readonly driver: string;
  readonly oldIdDeleted: boolean;
}
export interface GcMessage {
  readonly driver: string;
  readonly removed: number;
  readonly durationMs: number;
}

const lockWait = diagnostics.channel(CHANNELS.lockWait);
const lockTimeout = diagnostics.channel(CHANNELS.lockTimeout);
const storeError = diagnostics.channel(CHANNELS.storeError);
const storeRecovered = diagnostics.channel(CHANNELS.storeRecovered);
const sessionCreated = diagnostics.channel(CHANNELS.sessionCreated);
const sessionRegenerated = diagnostics.channel(CHANNELS.sessionRegenerated);
const sessionDestroyed = diagnostics.channel(CHANNELS.sessionDestroyed);
const gc = diagnostics.channel(CHANNELS.gc);

/** Publishers: each checks for subscribers first, so an unobserved event costs one property read. */
export const publish = {
  lockWait(driver: string, waitedMs: number): void {
    if (lockWait.hasSubscribers) lockWait.publish({ driver, waitedMs } satisfies LockWaitMessage);
  },
  lockTimeout(driver: string, waitedMs: number): void {
    if (lockTimeout.hasSubscribers)
      lockTimeout.publish({ driver, waitedMs } satisfies LockWaitMessage);
  },
  storeError(driver: string, operation: string, error: unknown): void {
    if (storeError.hasSubscribers)
      storeError.publish({ driver, operation, error } satisfies StoreErrorMessage);
  },
  storeRecovered(driver: string, failures: number, downMs: number): void {
    if (storeRecovered.hasSubscribers)
      storeRecovered.publish({ driver, failures, downMs } satisfies StoreRecoveredMessage);
  },
  sessionCreated(driver: string): void {
    if (sessionCreated.hasSubscribers)
      sessionCreated.publish({ driver } satisfies SessionEventMessage);
  },
  sessionRegenerated(driver: string, oldIdDeleted: boolean): void {
    if (sessionRegenerated.hasSubscribers)
      sessionRegenerated.publish({ driver, oldIdDeleted } satisfies RegeneratedMessage);
  },
  sessionDestroyed(driver: string): void {
    if (sessionDestroyed.hasSubscribers)
      sessionDestroyed.publish({ driver } satisfies SessionEventMessage);
  },
  gc(driver: string, removed: number, durationMs: number): void {
    if (gc.hasSubscribers) gc.publish({ driver, removed, durationMs } satisfies GcMessage);
  },
};
