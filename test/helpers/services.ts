import { execFile } from 'node:child_process';
import net from 'node:net';

/** True when the CI asks for every service-backed test to run (a missing server is then a failure). */
export const servicesRequired = process.env.KEEPSAKE_REQUIRE_SERVICES === '1';

/** Can a TCP connection be opened to host:port within timeoutMs? */
export function canConnect(host: string, port: number, timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/**
 * Decides whether a service-backed suite runs: returns a skip reason (for node:test's `skip`) when the
 * server is unreachable on a developer machine, and throws when KEEPSAKE_REQUIRE_SERVICES=1.
 */
export async function serviceSkip(
  name: string,
  host: string,
  port: number,
): Promise<string | false> {
  if (await canConnect(host, port)) return false;
  const message = `${name} is not reachable on ${host}:${port}`;
  if (servicesRequired) throw new Error(`${message}, and KEEPSAKE_REQUIRE_SERVICES=1 requires it.`);
  process.stderr.write(
    `\n*** SKIPPING ${name} tests: ${message}. Start it (see .ci/run) to run them. ***\n\n`,
  );
  return `${message} (skipped; set KEEPSAKE_REQUIRE_SERVICES=1 to make this a failure)`;
}

/**
 * Like serviceSkip, for a program the tests start (e.g. `php`): a skip reason when `command args`
 * cannot run on a developer machine; an error when KEEPSAKE_REQUIRE_SERVICES=1.
 */
export async function commandSkip(
  name: string,
  command: string,
  args: readonly string[] = ['--version'],
): Promise<string | false> {
  const runs = await new Promise<boolean>((resolve) => {
    execFile(command, args, { timeout: 10_000 }, (error) => resolve(error === null));
  });
  if (runs) return false;
  const message = `${name} is not installed (\`${[command, ...args].join(' ')}\` failed)`;
  if (servicesRequired) throw new Error(`${message}, and KEEPSAKE_REQUIRE_SERVICES=1 requires it.`);
  process.stderr.write(
    `\n*** SKIPPING ${name} tests: ${message}. Install it (scripts/services.sh does) to run them. ***\n\n`,
  );
  return `${message} (skipped; set KEEPSAKE_REQUIRE_SERVICES=1 to make this a failure)`;
}
