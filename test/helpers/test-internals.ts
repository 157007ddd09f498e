import type { Clock } from '../../src/clock.js';
import type { BindingDetails, BoundUser, SessionState } from '../../src/session.js';

/** What a Session reads and calls: a test's own stand-in for a request's lifecycle, with mutable state. */
export interface TestInternals {
  data: Map<string, unknown>;
  id: string;
  state: SessionState;
  clock: Clock;
  regenerate(destroy: boolean): Promise<void>;
  setLifetime(seconds: number): void;
  bindUser(userId: string, details?: BindingDetails): void;
  boundUser(): BoundUser | null;
  destroy(): Promise<void>;
  close(): Promise<void>;
}
