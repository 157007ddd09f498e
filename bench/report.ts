/**
 * The bench's report: a Markdown document ready to paste into docs/benchmarks.md (its Method and
 * Results sections) and the chart it shows, as standalone SVG (docs/benchmarks.svg).
 */
import type { CountResult } from './counts.js';
import type { settings as benchSettings, LoadResult } from './harness.js';
import { LARGE_SESSION_BYTES, type Workload, type WorkloadName } from './workloads.js';

/** One group's apps on one workload. */
export interface GroupResult {
  store: string;
  workload: WorkloadName;
  keepsake: LoadResult;
  peer: LoadResult;
  bare: LoadResult;
  reference?: LoadResult;
}

export interface Report {
  stamp: string;
  node: string;
  cpus: number;
  settings: typeof benchSettings;
  workloads: readonly Workload[];
  results: readonly GroupResult[];
  counts: readonly CountResult[];
  extras: readonly string[];
  /** The file name the document uses for the chart. */
  chartFile: string;
}

const number = (value: number, digits = 0) =>
  value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

const times = (count: number, noun = 'time') => `${count} ${noun}${count === 1 ? '' : 's'}`;

const ratioOf = (result: GroupResult) =>
  result.keepsake.requestsPerSecond / result.peer.requestsPerSecond;

function lost(result: LoadResult): string {
  return result.lostUpdates === null ? '–' : `${result.lostUpdates} / ${result.parallelWrites}`;
}

/** The timed results of one workload, every group's apps with their ratios to keepsake. */
export function workloadTable(results: readonly GroupResult[]): string {
  const lines = [
    '| store | app | req/s | p50 ms | p99 ms | failed | lost updates | keepsake ÷ this |',
    '|---|---|---:|---:|---:|---:|---:|---:|',
  ];
  for (const { store, bare, keepsake, peer, reference } of results) {
    for (const result of [keepsake, peer, bare, ...(reference ? [reference] : [])]) {
      const ratio =
        result === keepsake
          ? '–'
          : `${number(keepsake.requestsPerSecond / result.requestsPerSecond, 2)}×`;
      lines.push(
        `| ${store} | ${result.app} | ${number(result.requestsPerSecond)} | ${number(result.p50Ms, 1)} | ${number(result.p99Ms, 1)} | ${result.failures} | ${lost(result)} | ${ratio} |`,
      );
    }
  }
  return lines.join('\n');
}

function perRequest(total: number, requests: number): string {
  return number(total / requests, 2);
}

function commandsCell(count: CountResult): string {
  if (count.commands === null) return '–';
  const entries = Object.entries(count.commands).sort(([, left], [, right]) => right - left);
  const total = entries.reduce((sum, [, calls]) => sum + calls, 0);
  const parts = entries.map(([name, calls]) => `${name} ${perRequest(calls, count.requests)}`);
  return `${perRequest(total, count.requests)}${parts.length > 0 ? ` (${parts.join(', ')})` : ''}`;
}

function durableCell(count: CountResult): string {
  if (count.durableWrites === null) return '–';
  const background = count.backgroundWrites ?? 0;
  return (
    perRequest(count.durableWrites, count.requests) +
    (background > 0 ? ` (+${perRequest(background, count.requests)} background)` : '')
  );
}

/** The counted phase: per request, by store, workload and app. */
export function countsTable(counts: readonly CountResult[]): string {
  const lines = [
    '| store | workload | app | round trips | store commands | durable writes | log bytes |',
    '|---|---|---|---:|---|---:|---:|',
  ];
  for (const count of counts) {
    const app = count.failures > 0 ? `${count.app} (${count.failures} failed)` : count.app;
    if (count.error !== undefined) {
      lines.push(
        `| ${count.store} | ${count.workload} | ${app} | not counted: ${count.error.replaceAll('|', '/').replaceAll('\n', ' ')} | | | |`,
      );
      continue;
    }
    const roundTrips =
      count.roundTrips === null ? '–' : perRequest(count.roundTrips, count.requests);
    const logBytes =
      count.logBytes === null ? '–' : number(Math.round(count.logBytes / count.requests));
    lines.push(
      `| ${count.store} | ${count.workload} | ${app} | ${roundTrips} | ${commandsCell(count)} | ${durableCell(count)} | ${logBytes} |`,
    );
  }
  return lines.join('\n');
}

/** The Method section: the workloads, how they are loaded, and how the counts are taken. */
export function methodSection(report: Pick<Report, 'settings' | 'workloads'>): string {
  const { settings, workloads } = report;
  const seconds = (value: number) => `${number(value, value % 1 === 0 ? 0 : 1)} s`;
  return [
    '## Method',
    '',
    `\`npm run bench\` measures keepsake beside the library a user would pick instead, on the same app, the same store server and the same load, in one run. \`npm run bench -- redis file\` runs only the named groups (the \`bench/<name>.bench.ts\` files), \`BENCH_WORKLOADS=counter,read-mostly\` only those workloads.`,
    '',
    `- **The apps**: Express 5 (Fastify 5 for the Fastify group), each in its own server process, serving one route per workload; the load generator (autocannon, keep-alive, ${settings.connections} connections) runs in the bench process.`,
    '- **The workloads**, each measured on its own:',
    ...workloads.map((workload) => `  - \`${workload.name}\`: ${workload.summary}.`),
    `- **Sessions**: before each workload's timed run, ${number(settings.sessions)} sessions are opened with that workload's first request, the same way for keepsake and the peer (for large-session, that request stores the ${LARGE_SESSION_BYTES / 1024} KB payload: cart-like records). The load rotates through their cookies, so opening sessions is measured in new-visitors only. Where one request in ten writes, the write moves from session to session, so each session is written once in ten of its own requests.`,
    `- **Rounds**: every app runs the workloads one after another in one server process, each for ${seconds(settings.durationSeconds)} after a ${seconds(settings.warmupSeconds)} warm-up (\`BENCH_DURATION\`, \`BENCH_WARMUP\`). The apps of a group are measured ${times(settings.rounds)} (\`BENCH_ROUNDS\`), round-robin; the tables show each app's median run per workload, with failures and lost updates summed over the rounds. The bare app and floor-middleware keep no session, so they do the same in every workload: they are measured once per round and shown in every table.`,
    `- **Lost updates**: after each run of a workload that writes, ${settings.parallelRequests} of its requests are sent at once on one fresh session (\`BENCH_INCREMENTS\`; in read-mostly and large-session one in ten of them increments the counter); the writes the stored counter does not show were lost.`,
    "- **Peers**, each with the store keepsake uses in that row: express-session with its MemoryStore, session-file-store, connect-pg-simple, express-mysql-session (pools of 10 on both sides), connect-memcached, connect-redis, @fastify/session; and the bare app without sessions. They are configured as their READMEs recommend: `resave: false` (an unchanged session is only touched; connect-redis's touch is on), `saveUninitialized: false`, a cookie that lives as long as keepsake's sessions (2 hours; 5 minutes on memcached, on both sides). Expired-session cleanup is off on both sides (the peers' pruning timers, keepsake's GC probability), so neither is measured doing housekeeping.",
    "- **floor-middleware** (memory group): a middleware that only gives the request a session object and holds `end()` until a microtask has passed, as any library that saves before the response must. It stores nothing. It is the floor under every session library's throughput on Express.",
    `- **Counts per request** come from a separate phase, not under load: each app gets ${settings.countedRequests} sequential requests per workload (\`BENCH_COUNTED_REQUESTS\`) over ${settings.countedSessions} prepared sessions (new-visitors: without a cookie), against a private store server of the bench's own, so that nobody else's traffic is counted. The private PostgreSQL loads pg_stat_statements and runs no autovacuum, checkpoint or standby snapshot meanwhile; the private MariaDB runs its defaults, which flush the redo log at every commit, like the shared server's.`,
    "  - *Round trips*: strace attached to the app's server process; a round trip is a burst of writes to a store connection after a read from it, so pipelined commands count once. For the file driver: the system calls on session files.",
    "  - *Store commands*: the store's own counters before and after: Redis `INFO commandstats` (which counts the commands a script runs beside its EVALSHA), memcached `stats` (cmd_get, cmd_set, cmd_touch, delete and cas counters), PostgreSQL `pg_stat_statements` by statement kind, MariaDB `SHOW GLOBAL STATUS` Com_* counters; for the file driver, its system calls by name.",
    "  - *Durable writes*: fsync/fdatasync of the store's log (PostgreSQL's WAL, InnoDB's redo log), counted by strace on the store's processes. Those of the thread serving the request's connection count as the request's (it waits for them); the others are shown as background (the WAL writer flushing asynchronous commits, InnoDB's once-a-second flush). For the file driver: the app's fsyncs of session files. Redis and memcached keep nothing on disk here (–). pg_stat_wal is not used because backends report to it only seconds later, nor Innodb_os_log_fsyncs, which MariaDB 10.8 removed.",
    '  - *Log bytes*: `pg_current_wal_lsn()` and `Innodb_lsn_current` deltas, background included.',
    `- **Extras**: the lock handoff (${settings.handoffRequests} concurrent counter requests on one session against ${settings.handoffRequests} × one request, keepsake served in the bench process; target ≤ 1.2×) and the file driver's GC of ${number(settings.gcFiles)} session files, 10 % expired, with the longest event-loop stall during it.`,
    '- `BENCH_SMOKE=1` shrinks every default for a run of a few minutes that only proves the bench works; `BENCH_PROFILE=<dir>` makes every server process write a V8 CPU profile there.',
  ].join('\n');
}

/** The Results section: the chart, one table per workload, the counts and the extras. */
export function resultsSection(report: Report): string {
  const { settings, workloads, results, counts, extras } = report;
  const parts = [
    '## Results',
    '',
    `Node ${report.node.replace(/^v/, '')}, ${report.cpus} CPUs, ${report.stamp.slice(0, 10)}; ${settings.connections} connections, ${number(settings.sessions)} sessions, ${settings.durationSeconds} s per run, median of ${times(settings.rounds, 'round')}.`,
    '',
  ];
  if (results.length > 0) {
    parts.push(`![keepsake ÷ peer, requests/s per workload](${report.chartFile})`, '');
  }
  for (const workload of workloads) {
    const rows = results.filter((result) => result.workload === workload.name);
    if (rows.length === 0) continue;
    parts.push(
      `### ${workload.name}`,
      '',
      `${capitalised(workload.summary)}.`,
      '',
      workloadTable(rows),
      '',
    );
  }
  if (counts.length > 0) {
    parts.push(
      '### Per request: round trips, store commands, durable writes',
      '',
      `${settings.countedRequests} sequential requests per app and workload on private store servers; every number is per request.`,
      '',
      countsTable(counts),
      '',
    );
  }
  if (extras.length > 0) parts.push('### Extras', '', ...extras, '');
  return parts.join('\n');
}

const capitalised = (text: string) => text.charAt(0).toUpperCase() + text.slice(1);

export function benchmarksMarkdown(report: Report): string {
  return `${methodSection(report)}\n\n${resultsSection(report)}`;
}

const WORKLOAD_COLORS: Record<WorkloadName, string> = {
  counter: '#2e7d32',
  'read-mostly': '#1565c0',
  'large-session': '#ef6c00',
  'new-visitors': '#6a1b9a',
};

const escapeXml = (text: string) =>
  text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');

/**
 * keepsake ÷ peer in requests/s, one bar per workload for each store, against a line at parity;
 * as standalone SVG.
 */
export function ratioChart(
  results: readonly GroupResult[],
  workloads: readonly Workload[],
  caption: string,
): string {
  const stores = [...new Set(results.map((result) => result.store))];
  const barHeight = 13;
  const barGap = 3;
  const storeGap = 14;
  const labelWidth = 130;
  const chartWidth = 520;
  const top = 62;
  const scaleMax = Math.max(2, Math.ceil(Math.max(...results.map(ratioOf)) * 2) / 2);
  const x = (ratio: number) => labelWidth + (ratio / scaleMax) * chartWidth;
  const legend = workloads.flatMap((workload, index) => [
    `<rect x="${8 + index * 150}" y="30" width="12" height="12" fill="${WORKLOAD_COLORS[workload.name]}"/>`,
    `<text x="${25 + index * 150}" y="40">${workload.name}</text>`,
  ]);
  const bars: string[] = [];
  let y = top;
  for (const store of stores) {
    const rows = workloads.flatMap((workload) =>
      results.filter((result) => result.store === store && result.workload === workload.name),
    );
    const blockHeight = rows.length * (barHeight + barGap) - barGap;
    bars.push(
      `<text x="8" y="${(y + blockHeight / 2 + 4).toFixed(1)}" font-weight="bold">${escapeXml(store)}</text>`,
    );
    for (const result of rows) {
      const ratio = ratioOf(result);
      const width = Math.max(1, x(ratio) - labelWidth);
      const detail = `${store}, ${result.workload}: ${result.keepsake.app} ${number(result.keepsake.requestsPerSecond)} req/s, ${result.peer.app} ${number(result.peer.requestsPerSecond)} req/s`;
      bars.push(
        `<rect x="${labelWidth}" y="${y}" width="${width.toFixed(1)}" height="${barHeight}" fill="${WORKLOAD_COLORS[result.workload]}"><title>${escapeXml(detail)}</title></rect>`,
        `<text x="${(labelWidth + width + 5).toFixed(1)}" y="${y + barHeight - 2}">${number(ratio, 2)}×</text>`,
      );
      y += barHeight + barGap;
    }
    y += storeGap;
  }
  const bottom = y - storeGap + 6;
  const grid: string[] = [];
  const tickStep = scaleMax <= 3 ? 0.5 : scaleMax <= 6 ? 1 : 2;
  for (let tick = 0; tick <= scaleMax + 1e-9; tick += tickStep) {
    const tickX = x(tick).toFixed(1);
    grid.push(
      `<line x1="${tickX}" y1="${top - 6}" x2="${tickX}" y2="${bottom}" stroke="#e0e0e0"/>`,
      `<text x="${tickX}" y="${bottom + 14}" text-anchor="middle" fill="#555">${number(tick, 1)}×</text>`,
    );
  }
  const parity = `<line x1="${x(1)}" y1="${top - 6}" x2="${x(1)}" y2="${bottom}" stroke="#000" stroke-dasharray="4 3"/>`;
  const width = labelWidth + chartWidth + 60;
  const height = bottom + 40;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="8" y="18" font-size="14" font-weight="bold">${escapeXml(caption)}</text>
${[...legend, ...grid, ...bars, parity].join('\n')}
<text x="${labelWidth}" y="${height - 8}" fill="#555">keepsake ÷ peer in requests/s; right of the dashed line, keepsake is faster</text>
</svg>
`;
}
