import type { Session } from '../session.js';

export type { SessionMiddleware, SessionMiddlewareOptions } from './node.js';
export { session } from './node.js';

declare global {
  namespace Express {
    interface Request {
      /** The keepsake session of this request. */
      session: Session;
    }
  }
}
