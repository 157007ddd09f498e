/**
 * The counted phase: what one request costs the store, exactly. Each app of a group is served
 * against a private store server (so that nobody else's traffic is counted) and sent
 * `settings.countedRequests` sequential requests per workload; meanwhile
 *
 * - the store's own counters give the commands or statements it ran (before/after deltas);
 * - strace, attached to the app's server process, sees its round trips to the store: every burst
 *   of writes to a store connection that follows a read from it (for the file driver: every
 *   system call on a session file);
 * - strace, attached to the store's processes, sees its durable writes: fsync/fdatasync of its
 *   log (PostgreSQL's WAL, InnoDB's redo log), split into those made by the connection serving
 *   the request (the request waits for them) and those made in the background (e.g. the WAL
 *   writer flushing asynchronous commits); for the file driver, fsyncs of session files by the app.
 */
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  type BenchGroup,
  openSessions,
  type RunningServer,
  serverCommand,
  settings,
  startServer,
  stopServer,
} from './harness.js';
import { planRequest, type Workload, type WorkloadName } from './workloads.js';

/** A private store server for the counted phase, and how to read what it did. */
export interface CountingStore {
  /** The port the apps' store connections go to; null when the store is the app's own files. */
  port: number | null;
  /** Cumulative counts of the commands or statements the store ran, by name. */
  commands?(): Promise<Map<string, number>>;
  /** Cumulative bytes written to the store's log (WAL, redo log). */
  logBytes?(): Promise<number>;
  /** The store's processes, whose fsyncs of files matching `logFiles` make writes durable. */
  durability?: { pids(): Promise<number[]>; logFiles: RegExp };
  /** The files of the app that are the store (file driver): its system calls on them are counted. */
  appFiles?: RegExp;
  /** How long the store may still work on a request after the response (background flushes). */
  settleMs: number;
  stop(): Promise<void>;
}

/** Totals over one counted run; the report divides them by `requests`. */
export interface CountResult {
  store: string;
  app: string;
  workload: WorkloadName;
  requests: number;
  failures: number;
  /** Round trips to the store (file driver: system calls on session files); null: not traced. */
  roundTrips: number | null;
  /** Commands or statements the store ran, by name (file driver: system calls by name). */
  commands: Record<string, number> | null;
  /** fsyncs made while the request waited; null: the store keeps nothing on disk, or not traced. */
  durableWrites: number | null;
  /** fsyncs the store made in the background meanwhile. */
  backgroundWrites: number | null;
  logBytes: number | null;
  error?: string;
}

const SOCKET_SENDS = ['write', 'writev', 'sendto', 'sendmsg'];
const SOCKET_RECEIVES = ['read', 'readv', 'recvfrom', 'recvmsg'];
const SYNCS = ['fsync', 'fdatasync', 'sync_file_range'];
const FILE_CALLS = [
  'openat',
  'close',
  'pread64',
  'pwrite64',
  'preadv',
  'pwritev',
  'rename',
  'renameat',
  'renameat2',
  'unlink',
  'unlinkat',
  'flock',
  'fcntl',
  'fstat',
  'newfstatat',
  'statx',
  'ftruncate',
  'mkdir',
  'mkdirat',
  'getdents64',
  'utimensat',
  'futimesat',
  'link',
  'linkat',
  'fchmod',
  'lseek',
];

let straceChecked: Promise<boolean> | undefined;

/** Whether strace runs here (install it with `apt-get install -y strace`). */
export function straceAvailable(): Promise<boolean> {
  straceChecked ??= new Promise((resolve) => {
    execFile('strace', ['-V'], (error) => resolve(error === null));
  });
  return straceChecked;
}

/** strace attached to running processes (all their threads, and the processes they start). */
class Trace {
  private constructor(
    private readonly child: ReturnType<typeof spawn>,
    private readonly directory: string,
  ) {}

  static async attach(pids: readonly number[], syscalls: readonly string[]): Promise<Trace> {
    const directory = await mkdtemp(join(tmpdir(), 'keepsake-trace-'));
    const child = spawn(
      'strace',
      [
        '-f',
        '-yy',
        '-s',
        '0',
        '-e',
        `trace=${syscalls.join(',')}`,
        '-o',
        join(directory, 'trace'),
        ...pids.flatMap((pid) => ['-p', String(pid)]),
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    const trace = new Trace(child, directory);
    let attached = 0;
    let messages = '';
    const ready = new Promise<void>((resolve, reject) => {
      child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
        messages += chunk;
        // A process that exited before strace got to it is reported instead of attached.
        attached += chunk.match(/attached|PTRACE_SEIZE/g)?.length ?? 0;
        if (attached >= pids.length) resolve();
      });
      child.once('exit', (code) => reject(new Error(`strace exited with ${code}: ${messages}`)));
      setTimeout(() => reject(new Error(`strace did not attach: ${messages}`)), 10_000).unref();
    });
    try {
      await ready;
    } catch (error) {
      await trace.detach().catch(() => {});
      throw error;
    }
    return trace;
  }

  /** Detaches and answers the traced system calls, one line each (the calls' entries only). */
  async detach(): Promise<string[]> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = once(this.child, 'exit');
      this.child.kill('SIGINT');
      await exited;
    }
    try {
      const text = await readFile(join(this.directory, 'trace'), 'utf8').catch(() => '');
      return text.split('\n').filter((line) => /^\d+ +[a-z0-9_]+\(/.test(line));
    } finally {
      await rm(this.directory, { recursive: true, force: true });
    }
  }
}

/** A traced call: its thread, name, and the description of its first descriptor (-yy). */
function parseCall(line: string): { thread: string; name: string; target: string } | undefined {
  // The description ends at the '>' before the next argument: a socket's has a '->' inside.
  const match = /^(\d+) +([a-z0-9_]+)\((?:\d+<(.+?)>(?=[,)]))?/.exec(line);
  if (match === null) return undefined;
  return { thread: match[1] ?? '', name: match[2] ?? '', target: match[3] ?? '' };
}

/** "TCP:[127.0.0.1:40312->127.0.0.1:6379]" → local and remote port. */
function socketPorts(target: string): { local: number; remote: number } | undefined {
  const match = /^TCPv?6?:\[.*:(\d+)->.*:(\d+)\]$/.exec(target);
  return match === null ? undefined : { local: Number(match[1]), remote: Number(match[2]) };
}

/** The app's round trips to the store: bursts of sends on a store connection after a read. */
function roundTripsTo(lines: readonly string[], port: number): number {
  const lastWasSend = new Map<string, boolean>();
  let roundTrips = 0;
  for (const line of lines) {
    const call = parseCall(line);
    if (call === undefined || socketPorts(call.target)?.remote !== port) continue;
    const sends = SOCKET_SENDS.includes(call.name);
    if (sends && lastWasSend.get(call.target) !== true) roundTrips += 1;
    if (sends || SOCKET_RECEIVES.includes(call.name)) lastWasSend.set(call.target, sends);
  }
  return roundTrips;
}

/** The app's system calls on the store's files, by name (lines mention the file by path). */
function fileCalls(lines: readonly string[], files: RegExp): Map<string, number> {
  const calls = new Map<string, number>();
  for (const line of lines) {
    const call = parseCall(line);
    if (call === undefined || !files.test(line)) continue;
    calls.set(call.name, (calls.get(call.name) ?? 0) + 1);
  }
  return calls;
}

/**
 * The store's fsyncs of its log: made by a thread serving a connection on `port` (the request
 * waits for it) or by a background one.
 */
function logSyncs(
  lines: readonly string[],
  logFiles: RegExp,
  port: number,
): { request: number; background: number } {
  const serving = new Set<string>();
  for (const line of lines) {
    const call = parseCall(line);
    if (call !== undefined && socketPorts(call.target)?.local === port) serving.add(call.thread);
  }
  const syncs = { request: 0, background: 0 };
  for (const line of lines) {
    const call = parseCall(line);
    if (call === undefined || !SYNCS.includes(call.name) || !logFiles.test(call.target)) continue;
    if (serving.has(call.thread)) syncs.request += 1;
    else syncs.background += 1;
  }
  return syncs;
}

function delta(before: Map<string, number>, after: Map<string, number>): Record<string, number> {
  const changes: Record<string, number> = {};
  for (const [name, value] of after) {
    const change = value - (before.get(name) ?? 0);
    if (change !== 0) changes[name] = change;
  }
  return changes;
}

const sum = (counts: Iterable<number>) => [...counts].reduce((total, count) => total + count, 0);

async function countWorkload(
  group: BenchGroup,
  app: string,
  server: RunningServer,
  store: CountingStore,
  workload: Workload,
  traced: boolean,
): Promise<CountResult> {
  const cookies =
    workload.openPath === null
      ? []
      : await openSessions(`${server.url}${workload.openPath}`, settings.countedSessions);
  await sleep(store.settleMs);
  const appCalls = [...SOCKET_SENDS, ...SOCKET_RECEIVES, ...SYNCS, ...FILE_CALLS];
  const appTrace = traced ? await Trace.attach([server.pid], appCalls) : undefined;
  const storeTrace =
    traced && store.durability !== undefined
      ? await Trace.attach(await store.durability.pids(), [...SOCKET_RECEIVES, ...SYNCS])
      : undefined;
  let failures = 0;
  let commands: Record<string, number> | null = null;
  let logBytes: number | null = null;
  let appLines: string[] = [];
  let storeLines: string[] = [];
  try {
    const commandsBefore = await store.commands?.();
    const bytesBefore = await store.logBytes?.();
    for (let index = 0; index < settings.countedRequests; index += 1) {
      const planned = planRequest(workload, index, cookies.length);
      const cookie = planned.session === null ? undefined : cookies[planned.session];
      const response = await fetch(
        `${server.url}${planned.path}`,
        cookie === undefined ? {} : { headers: { cookie } },
      );
      await response.arrayBuffer();
      if (!response.ok) failures += 1;
    }
    await sleep(store.settleMs);
    const commandsAfter = await store.commands?.();
    if (commandsBefore !== undefined && commandsAfter !== undefined) {
      commands = delta(commandsBefore, commandsAfter);
    }
    const bytesAfter = await store.logBytes?.();
    if (bytesBefore !== undefined && bytesAfter !== undefined) logBytes = bytesAfter - bytesBefore;
  } finally {
    appLines = (await appTrace?.detach()) ?? [];
    storeLines = (await storeTrace?.detach()) ?? [];
  }
  const result: CountResult = {
    store: group.title,
    app,
    workload: workload.name,
    requests: settings.countedRequests,
    failures,
    roundTrips: null,
    commands,
    durableWrites: null,
    backgroundWrites: null,
    logBytes,
  };
  if (!traced) return result;
  if (store.appFiles !== undefined) {
    const calls = fileCalls(appLines, store.appFiles);
    result.roundTrips = sum(calls.values());
    result.commands = Object.fromEntries(calls);
    result.durableWrites = sum(SYNCS.map((name) => calls.get(name) ?? 0));
    result.backgroundWrites = 0;
  }
  if (store.port !== null) {
    result.roundTrips = roundTripsTo(appLines, store.port);
    if (store.durability !== undefined) {
      const syncs = logSyncs(storeLines, store.durability.logFiles, store.port);
      result.durableWrites = syncs.request;
      result.backgroundWrites = syncs.background;
    }
  }
  return result;
}

/**
 * The counted phase of one group: a private store, then each app (keepsake, then the peer) in its
 * own server process, every workload in turn. A failure is reported in the result, not thrown.
 */
export async function countGroup(
  group: BenchGroup,
  modulePath: string,
  workloads: readonly Workload[],
  progress: (text: string) => void = () => {},
): Promise<CountResult[]> {
  if (group.countingStore === undefined) return [];
  const traced = await straceAvailable();
  const failed = (app: string, workload: Workload, error: unknown): CountResult => ({
    store: group.title,
    app,
    workload: workload.name,
    requests: 0,
    failures: 0,
    roundTrips: null,
    commands: null,
    durableWrites: null,
    backgroundWrites: null,
    logBytes: null,
    error: error instanceof Error ? error.message : String(error),
  });
  let store: CountingStore;
  try {
    store = await group.countingStore();
  } catch (error) {
    return [group.keepsake, group.peer].flatMap((app) =>
      workloads.map((workload) => failed(app, workload, error)),
    );
  }
  const results: CountResult[] = [];
  try {
    for (const app of [group.keepsake, group.peer]) {
      const env: Record<string, string> =
        store.port === null ? {} : { BENCH_STORE_PORT: String(store.port) };
      const counted: CountResult[] = [];
      try {
        const server = await startServer(app, serverCommand(group, modulePath, app, env));
        try {
          for (const workload of workloads) {
            counted.push(
              await countWorkload(group, app, server, store, workload, traced).catch((error) =>
                failed(app, workload, error),
              ),
            );
          }
        } finally {
          await stopServer(server);
        }
        progress(`${app} counted ✓ `);
      } catch (error) {
        const done = new Set(counted.map((result) => result.workload));
        counted.push(
          ...workloads.filter(({ name }) => !done.has(name)).map((w) => failed(app, w, error)),
        );
      }
      results.push(...counted);
    }
  } finally {
    await store.stop();
  }
  return results;
}
