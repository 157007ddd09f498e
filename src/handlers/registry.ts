import type { DriverName, ResolvedConfig } from '../config.js';
import { SessionConfigError } from '../errors.js';
import type { SessionHandler } from './contract.js';

/** Each built-in driver lives in its own module, loaded only when configured. */
const DRIVER_MODULES: Record<DriverName, string> = {
  array: './array.js',
  file: './file.js',
  database: './database/index.js',
  redis: './redis.js',
  memcached: './memcached.js',
};

interface DriverModule {
  createHandler(config: ResolvedConfig): SessionHandler | Promise<SessionHandler>;
}

/** The handler for `config.driver`: the user's own object, or a built-in driver loaded on demand. */
export async function loadHandler(config: ResolvedConfig): Promise<SessionHandler> {
  if (typeof config.driver !== 'string') return config.driver;
  const specifier = DRIVER_MODULES[config.driver];
  let driverModule: DriverModule;
  try {
    driverModule = (await import(specifier)) as DriverModule;
  } catch (error) {
    throw new SessionConfigError(
      'driver',
      `the "${config.driver}" driver could not be loaded (${error instanceof Error ? error.message : String(error)}).`,
      { cause: error },
    );
  }
  return driverModule.createHandler(config);
}
