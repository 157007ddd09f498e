import { debuglog } from 'node:util';

/** Where keepsake reports what it does; replace it with the `logger` option. */
export interface SessionLogger {
  debug(message: string): void;
  warn(message: string): void;
  error(message: string, error?: unknown): void;
}

const debug = debuglog('keepsake');

/** Debug lines appear with NODE_DEBUG=keepsake; warnings and errors always reach stderr. */
export const defaultLogger: SessionLogger = {
  debug: (message) => debug(message),
  warn: (message) => process.emitWarning(message, { code: 'KEEPSAKE' }),
  error: (message, error) => {
    const reason = error instanceof Error ? `: ${error.message}` : '';
    process.emitWarning(`${message}${reason}`, { code: 'KEEPSAKE' });
  },
};
