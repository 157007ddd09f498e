/**
 * A real CodeIgniter 4.1.3 application (the `codeigniter4` devDependency) that tests start with
 * PHP's built-in server, to share sessions between CodeIgniter and keepsake. Each app lives in a
 * fresh temp dir: `system/` is a symlink into node_modules, `app/`, `public/` and `writable/` are
 * copies, plus keepsake's test controller (test/codeigniter/app) with JSON routes under /keepsake/.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { cp, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { servicesRequired } from '../helpers/services.js';

export type CodeIgniterDriver = 'file' | 'redis' | 'memcached' | 'postgres' | 'mysql';

export interface CodeIgniterDatabase {
  readonly hostname: string;
  readonly port: number;
  readonly username: string;
  readonly password: string;
  readonly database: string;
}

export interface CodeIgniterOptions {
  readonly driver: CodeIgniterDriver;
  /**
   * App::$sessionSavePath: a directory (file), `tcp://host:port?database=N&prefix=p:` (redis),
   * `host:port[:weight],…` (memcached) or the table name (postgres, mysql).
   */
  readonly savePath: string;
  /** App::$sessionCookieName; CodeIgniter's default is `ci_session`. */
  readonly cookieName?: string;
  /** App::$sessionExpiration in seconds; default 7200. */
  readonly expiration?: number;
  /** App::$sessionMatchIP; default false. */
  readonly matchIP?: boolean;
  /** App::$sessionTimeToUpdate in seconds; default 300 (0 turns auto-regeneration off). */
  readonly timeToUpdate?: number;
  /** App::$sessionRegenerateDestroy; default false. */
  readonly regenerateDestroy?: boolean;
  /** Database of the postgres/mysql drivers; defaults to the machine's test servers. */
  readonly database?: Partial<CodeIgniterDatabase>;
  /** php.ini settings passed as `-d name=value`, e.g. `{ 'session.sid_length': '40' }`. */
  readonly ini?: Readonly<Record<string, string>>;
  /** PHP_CLI_SERVER_WORKERS: requests served at once; default 4. */
  readonly workers?: number;
}

export interface CodeIgniterApp {
  /** Base URL, e.g. http://127.0.0.1:41234 (routes are under /keepsake/). */
  readonly url: string;
  /** The app's root (holds .env, app/, public/, writable/, system → node_modules). */
  readonly dir: string;
  /** What CodeIgniter logged (writable/logs) and what the PHP server printed, for failure messages. */
  logs(): Promise<string>;
  /** Stops the PHP server (its process group only) and removes the app's dir. */
  stop(): Promise<void>;
}

const frameworkDir = fileURLToPath(new URL('../../node_modules/codeigniter4/', import.meta.url));
const overlayDir = fileURLToPath(new URL('./app/', import.meta.url));

const HANDLERS: Record<CodeIgniterDriver, string> = {
  file: 'CodeIgniter\\Session\\Handlers\\FileHandler',
  redis: 'CodeIgniter\\Session\\Handlers\\RedisHandler',
  memcached: 'CodeIgniter\\Session\\Handlers\\MemcachedHandler',
  postgres: 'CodeIgniter\\Session\\Handlers\\DatabaseHandler',
  mysql: 'CodeIgniter\\Session\\Handlers\\DatabaseHandler',
};

/** PHP extensions each driver needs (besides those CodeIgniter itself needs: see codeIgniterSkip). */
const EXTENSIONS: Record<CodeIgniterDriver, readonly string[]> = {
  file: [],
  redis: ['redis'],
  memcached: ['memcached'],
  postgres: ['pgsql'],
  mysql: ['mysqli'],
};

const DEFAULT_DATABASES: Record<'postgres' | 'mysql', CodeIgniterDatabase> = {
  postgres: {
    hostname: '127.0.0.1',
    port: 5432,
    username: 'postgres',
    password: '',
    database: 'test',
  },
  mysql: { hostname: '127.0.0.1', port: 3306, username: 'root', password: '', database: 'test' },
};

/**
 * Skip reason when PHP or an extension the driver needs is missing (install them with
 * scripts/services.sh); throws instead under KEEPSAKE_REQUIRE_SERVICES=1.
 */
export async function codeIgniterSkip(driver: CodeIgniterDriver): Promise<string | false> {
  const loaded = await new Promise<string[] | null>((resolve) => {
    execFile('php', ['-r', 'echo json_encode(get_loaded_extensions());'], (error, stdout) => {
      resolve(
        error === null ? (JSON.parse(stdout) as string[]).map((name) => name.toLowerCase()) : null,
      );
    });
  });
  const needed = ['curl', 'intl', 'json', 'mbstring', 'xml', 'dom', ...EXTENSIONS[driver]];
  const missing = loaded === null ? ['php'] : needed.filter((name) => !loaded.includes(name));
  if (missing.length === 0) return false;
  const message =
    loaded === null
      ? 'php is not installed'
      : `PHP lacks the extension(s) ${missing.join(', ')} that CodeIgniter's ${driver} sessions need`;
  if (servicesRequired) throw new Error(`${message}, and KEEPSAKE_REQUIRE_SERVICES=1 requires it.`);
  process.stderr.write(
    `\n*** SKIPPING CodeIgniter (${driver}) tests: ${message}. scripts/services.sh installs PHP. ***\n\n`,
  );
  return `${message} (skipped; set KEEPSAKE_REQUIRE_SERVICES=1 to make this a failure)`;
}

/** Copies CodeIgniter into a temp dir, configures it, and serves it until stop(). */
export async function startCodeIgniter(options: CodeIgniterOptions): Promise<CodeIgniterApp> {
  const dir = await mkdtemp(join(tmpdir(), 'keepsake-codeigniter-'));
  let server: ChildProcess | undefined;
  let output = '';
  try {
    await symlink(join(frameworkDir, 'system'), join(dir, 'system'), 'dir');
    for (const part of ['app', 'public', 'writable']) {
      await cp(join(frameworkDir, part), join(dir, part), { recursive: true });
    }
    await cp(overlayDir, join(dir, 'app'), { recursive: true });
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    await configureApp(dir, url, options);

    const ini = Object.entries(options.ini ?? {}).flatMap(([name, value]) => [
      '-d',
      `${name}=${value}`,
    ]);
    server = spawn(
      'php',
      [...ini, '-S', `127.0.0.1:${port}`, '-t', 'public', 'system/Commands/Server/rewrite.php'],
      {
        cwd: dir,
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, PHP_CLI_SERVER_WORKERS: String(options.workers ?? 4) },
      },
    );
    const remember = (chunk: Buffer) => {
      output = (output + chunk.toString('utf8')).slice(-20_000);
    };
    server.stdout?.on('data', remember);
    server.stderr?.on('data', remember);
    await waitUntilServing(url, server, () => output);

    const running = server;
    return {
      url,
      dir,
      logs: () => readLogs(dir, output),
      async stop() {
        await stopServer(running);
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    if (server !== undefined) await stopServer(server);
    const logs = await readLogs(dir, output);
    await rm(dir, { recursive: true, force: true });
    throw new Error(`${error instanceof Error ? error.message : error}\n${logs}`, { cause: error });
  }
}

async function readLogs(dir: string, output: string): Promise<string> {
  const logDir = join(dir, 'writable', 'logs');
  const files = (await readdir(logDir).catch(() => [])).filter((name) => name.endsWith('.log'));
  const logged = await Promise.all(files.map((name) => readFile(join(logDir, name), 'utf8')));
  return `--- CodeIgniter log ---\n${logged.join('\n')}\n--- php -S output ---\n${output}`;
}

/** Writes .env (environment, database) and the session settings into app/Config/App.php. */
async function configureApp(dir: string, url: string, options: CodeIgniterOptions): Promise<void> {
  const env = ['CI_ENVIRONMENT = production'];
  if (options.driver === 'postgres' || options.driver === 'mysql') {
    const database = { ...DEFAULT_DATABASES[options.driver], ...options.database };
    env.push(
      `database.default.hostname = ${database.hostname}`,
      `database.default.port = ${database.port}`,
      `database.default.username = ${database.username}`,
      `database.default.password = ${database.password}`,
      `database.default.database = ${database.database}`,
      `database.default.DBDriver = ${options.driver === 'postgres' ? 'Postgre' : 'MySQLi'}`,
      // Production turns DBDebug off, which would hide a failing session query.
      'database.default.DBDebug = true',
    );
  }
  await writeFile(join(dir, '.env'), `${env.join('\n')}\n`);

  // In App.php rather than .env: .env values arrive as strings, and 4.1.3 compares
  // sessionExpiration with `=== 0`, so a string "0" would not mean "until the browser closes".
  const settings: Record<string, string> = {
    baseURL: phpString(`${url}/`),
    indexPage: phpString(''),
    sessionDriver: phpString(HANDLERS[options.driver]),
    sessionCookieName: phpString(options.cookieName ?? 'ci_session'),
    sessionExpiration: String(options.expiration ?? 7200),
    sessionSavePath: phpString(options.savePath),
    sessionMatchIP: String(options.matchIP ?? false),
    sessionTimeToUpdate: String(options.timeToUpdate ?? 300),
    sessionRegenerateDestroy: String(options.regenerateDestroy ?? false),
  };
  const appConfig = join(dir, 'app', 'Config', 'App.php');
  let source = await readFile(appConfig, 'utf8');
  for (const [name, literal] of Object.entries(settings)) {
    const declaration = new RegExp(`public \\$${name}\\s*=[^;]*;`);
    if (!declaration.test(source)) throw new Error(`App.php has no $${name} to set`);
    source = source.replace(declaration, () => `public $${name} = ${literal};`);
  }
  await writeFile(appConfig, source);
}

/** A single-quoted PHP string literal. */
function phpString(text: string): string {
  return `'${text.replace(/[\\']/g, (character) => `\\${character}`)}'`;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}

async function waitUntilServing(
  url: string,
  server: ChildProcess,
  output: () => string,
): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (server.exitCode !== null || server.signalCode !== null) {
      throw new Error(`php -S exited (${server.exitCode ?? server.signalCode}): ${output()}`);
    }
    try {
      const response = await fetch(`${url}/keepsake/ping`);
      const body = await response.text();
      if (response.ok) return;
      throw new Error(`CodeIgniter answered ${response.status} to /keepsake/ping: ${body}`);
    } catch (error) {
      if (error instanceof Error && error.message.startsWith('CodeIgniter answered')) throw error;
      // Not listening yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`CodeIgniter did not answer on ${url} within 20 s: ${output()}`);
}

/** Ends the server's process group (the PHP_CLI_SERVER_WORKERS children too) and waits for it. */
async function stopServer(server: ChildProcess): Promise<void> {
  if (server.exitCode !== null || server.signalCode !== null || server.pid === undefined) return;
  const exited = once(server, 'exit');
  const group = -server.pid;
  process.kill(group, 'SIGTERM');
  const timer = setTimeout(() => {
    try {
      process.kill(group, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }, 5_000);
  await exited;
  clearTimeout(timer);
}
