import type { ResolvedConfig } from '../../config.js';
import type { SessionHandler } from '../contract.js';
import { DatabaseHandler } from './handler.js';

export { DatabaseHandler } from './handler.js';
export {
  DEFAULT_TABLE,
  type SessionTableOptions,
  type SqlDialect,
  sessionTableSql,
} from './schema.js';

/** The `database` driver: sessions in a PostgreSQL or MySQL/MariaDB table named by savePath. */
export function createHandler(_config: ResolvedConfig): SessionHandler {
  return new DatabaseHandler();
}
