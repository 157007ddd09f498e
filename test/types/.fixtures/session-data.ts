/**
 * The app's session shape, declared the documented way (one declaration for every framework).
 * Both fixtures include it; it is not part of tsconfig.check.json, so it types nothing else.
 */
import type {} from 'keepsake';

declare module 'keepsake' {
  interface SessionDataMap {
    count: number;
    notice: string;
    user: { name: string; admin: boolean };
  }
}
