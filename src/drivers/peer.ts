import { SessionConfigError } from '../errors.js';

/**
 * Throws SessionConfigError with the install command when a driver's peer package is not
 * installed, so a missing package fails when the driver is created, not at the first request.
 * Resolution only: nothing is loaded until the driver opens.
 */
export function requirePeer(packageName: string, user: string, alternative = ''): void {
  const resolve = import.meta.resolve as ((specifier: string) => string) | undefined;
  // Bundlers may not provide import.meta.resolve; the import at open() still fails clearly there.
  if (typeof resolve !== 'function') return;
  try {
    resolve(packageName);
  } catch (error) {
    throw new SessionConfigError(
      'driver',
      `${user} needs the "${packageName}" package, which is not installed: run \`npm install ${packageName}\`${alternative === '' ? '' : `, ${alternative}`}.`,
      { cause: error },
    );
  }
}
