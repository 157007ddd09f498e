/**
 * Store servers of the bench's own, started for the counted phase on spare ports so that nobody
 * else's traffic is in their counters, and removed with everything they wrote afterwards.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdir, readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { portOpen } from './harness.js';

const execFileAsync = promisify(execFile);

export interface PrivateServer {
  pid: number;
  port: number;
  stop(): Promise<void>;
}

export interface SystemUser {
  uid: number;
  gid: number;
}

/** A system account's ids, from /etc/passwd (PostgreSQL refuses to run as root). */
export async function systemUser(name: string): Promise<SystemUser> {
  for (const line of (await readFile('/etc/passwd', 'utf8')).split('\n')) {
    const [user, , uid, gid] = line.split(':');
    if (user === name) return { uid: Number(uid), gid: Number(gid) };
  }
  throw new Error(`no system user "${name}"`);
}

/** Runs a setup command to its end (as `user` when given); its output goes nowhere. */
export async function runCommand(
  command: string,
  args: readonly string[],
  user?: SystemUser,
): Promise<void> {
  await execFileAsync(command, args, { ...user, maxBuffer: 16 * 1024 * 1024 });
}

/** The processes `pid` started, read from /proc (its threads' children files). */
export async function childPids(pid: number): Promise<number[]> {
  const children: number[] = [];
  for (const task of await readdir(`/proc/${pid}/task`)) {
    const listed = await readFile(`/proc/${pid}/task/${task}/children`, 'utf8').catch(() => '');
    children.push(...listed.split(' ').filter(Boolean).map(Number));
  }
  return children;
}

async function stopChild(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/**
 * Starts `command` and waits until it accepts connections on `port` (on 127.0.0.1). Fails when the
 * port is already taken or the server exits first, with the end of its error output.
 */
export async function startPrivateServer(options: {
  name: string;
  command: string;
  args: readonly string[];
  port: number;
  user?: SystemUser;
  /** How the server shuts down quickly and cleanly (PostgreSQL: SIGINT, its fast shutdown). */
  stopSignal?: NodeJS.Signals;
}): Promise<PrivateServer> {
  const { name, command, args, port, user, stopSignal = 'SIGTERM' } = options;
  if (await portOpen('127.0.0.1', port)) throw new Error(`port ${port} for ${name} is taken`);
  const child = spawn(command, args, { ...user, stdio: ['ignore', 'ignore', 'pipe'] });
  let errorOutput = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    errorOutput = (errorOutput + chunk).slice(-2_000);
  });
  const failed = new Promise<string>((resolve) => {
    child.once('error', (error) => resolve(error.message));
    child.once('exit', (code) => resolve(`exited with ${code}: ${errorOutput.trim()}`));
  });
  let failure: string | undefined;
  void failed.then((reason) => {
    failure = reason;
  });
  for (let waited = 0; waited < 30_000; waited += 100) {
    if (failure !== undefined) break;
    if (await portOpen('127.0.0.1', port)) {
      return { pid: child.pid ?? 0, port, stop: () => stopChild(child, stopSignal) };
    }
    await sleep(100);
  }
  await stopChild(child, 'SIGKILL');
  throw new Error(`${name} did not start on port ${port} (${failure ?? 'timed out'})`);
}

/** Steps that undo a setup, run in reverse order (also when the setup fails half-way). */
export class Teardown {
  readonly #steps: (() => Promise<unknown>)[] = [];

  add(step: () => Promise<unknown>): void {
    this.#steps.push(step);
  }

  async run(): Promise<void> {
    for (const step of this.#steps.splice(0).reverse()) await step().catch(() => {});
  }

  /** Runs `setup`; when it throws, undoes what it did so far and rethrows. */
  async guard<Result>(setup: () => Promise<Result>): Promise<Result> {
    try {
      return await setup();
    } catch (error) {
      await this.run();
      throw error;
    }
  }
}
