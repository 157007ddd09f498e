/**
 * The app's session shape, declared the documented way (README.md, docs/frameworks/*.md): one
 * declaration types every framework. types.test.ts puts it in each of its programs; it is in no
 * other compilation (tsconfig.check.json skips dot-folders), so it types nothing else.
 */
import type {} from 'keepsake';

declare module 'keepsake' {
  interface SessionDataMap {
    count: number;
    notice: string;
    user: { name: string; admin: boolean };
  }
}
