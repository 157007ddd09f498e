export { type Clock, FakeClock, systemClock } from './clock.js';
export {
  type CookieOptions,
  DRIVER_NAMES,
  type DriverName,
  type SameSite,
  type SessionConfig,
} from './config.js';
export {
  SessionClosedError,
  SessionConfigError,
  SessionError,
  SessionHeadersSentError,
  SessionLockTimeoutError,
  SessionStoreError,
  SessionValueError,
} from './errors.js';
export type {
  HandlerSettings,
  LockedRead,
  SessionHandler,
  SessionKey,
  SessionLock,
} from './handlers/contract.js';
export {
  type SessionTableOptions,
  type SqlDialect,
  sessionTableSql,
} from './handlers/database/schema.js';
export type { SessionLogger } from './log.js';
export { createSessionManager, type RequestInfo, SessionManager } from './manager.js';
export type { SessionValue } from './serializer.js';
export { type AppSessionData, Session, type SessionData, type SessionDataMap } from './session.js';
