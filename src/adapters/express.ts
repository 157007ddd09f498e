import type { Session } from '../index.js';

export type { SessionMiddleware, SessionMiddlewareOptions } from './node.js';
export { session } from './node.js';

declare global {
  namespace Express {
    interface Request {
      /** The keepsake session of this request. */
      session: Session;
      /** The ID of `req.session` (express-session's name for `req.session.id`). */
      readonly sessionID: string;
    }
  }
}
