/** The app's session shape, declared the way the README shows. */
import type {} from 'keepsake';

declare module 'keepsake' {
  interface SessionDataMap {
    visits: number;
    notice: string;
    user: { name: string };
  }
}
