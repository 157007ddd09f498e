import { subscribe } from 'node:diagnostics_channel';

/** What the demo counts from keepsake's diagnostics channels, since it started. */
export interface DemoMetrics {
  sessionsCreated: number;
  regenerations: number;
  destroyed: number;
  lockWaits: number;
  /** The longest a request waited for its session's lock, in ms. */
  longestLockWaitMs: number;
  lockTimeouts: number;
  storeErrors: number;
}

/** Subscribes to keepsake's channels (see docs/observability.md) and keeps the counts. */
export function collectMetrics(): DemoMetrics {
  const metrics: DemoMetrics = {
    sessionsCreated: 0,
    regenerations: 0,
    destroyed: 0,
    lockWaits: 0,
    longestLockWaitMs: 0,
    lockTimeouts: 0,
    storeErrors: 0,
  };
  subscribe('keepsake:session:created', () => {
    metrics.sessionsCreated += 1;
  });
  subscribe('keepsake:session:regenerated', () => {
    metrics.regenerations += 1;
  });
  subscribe('keepsake:session:destroyed', () => {
    metrics.destroyed += 1;
  });
  subscribe('keepsake:lock:wait', (message) => {
    const { waitedMs } = message as { waitedMs: number };
    metrics.lockWaits += 1;
    metrics.longestLockWaitMs = Math.max(metrics.longestLockWaitMs, waitedMs);
  });
  subscribe('keepsake:lock:timeout', () => {
    metrics.lockTimeouts += 1;
  });
  subscribe('keepsake:store:error', () => {
    metrics.storeErrors += 1;
  });
  return metrics;
}
