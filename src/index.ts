export type { Clock } from './clock.js';
export type { CookieOptions, DriverName, SameSite, SessionConfig } from './config.js';
export type {
  DriverContext,
  LockAttempt,
  SessionDriver,
  SessionKey,
  SessionStore,
  TouchOutcome,
} from './drivers/contract.js';
export {
  SessionClosedError,
  SessionConfigError,
  SessionError,
  SessionHeadersSentError,
  SessionLockLostError,
  SessionLockTimeoutError,
  SessionStoreError,
  SessionValueError,
} from './errors.js';
export type { SessionLogger } from './log.js';
export {
  createSessionManager,
  type RequestInfo,
  SessionManager,
  type UserSession,
} from './manager.js';
export type { SessionValue } from './serializer.js';
export {
  type AppSessionData,
  type BindingDetails,
  type BoundUser,
  Session,
  type SessionData,
  type SessionDataMap,
} from './session.js';
