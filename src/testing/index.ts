export { FakeClock } from '../clock.js';
export { assertSessionHas, assertSessionMissing } from './assertions.js';
export {
  type ConformanceTarget,
  openStore,
  runConformanceSuite,
  type StoreHarness,
  type TestFunctions,
} from './conformance.js';
export { type Fault, FaultyStore, faultyDriver } from './faulty-store.js';
export { requestFor } from './request-for.js';
export type { SetCookieSource } from './set-cookie.js';
export {
  type SessionFill,
  type SessionSnapshot,
  type TestRequestOptions,
  type TestSessionConfig,
  TestSessions,
  type TestSessionsOptions,
  testSessions,
} from './test-sessions.js';
