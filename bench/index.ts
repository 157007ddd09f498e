/**
 * `npm run bench [-- name…]`: runs every bench/<name>.bench.ts (or the named ones). Each group
 * measures keepsake, its peer library and the bare app on every workload (BENCH_WORKLOADS, default
 * all) in separate server processes, then counts what one request costs the store, and writes a
 * report ready for docs/benchmarks.md (bench/results/benchmarks.{md,svg}, latest.json).
 *
 * A smoke run of a few minutes: `BENCH_SMOKE=1 npm run bench`. The other knobs are in harness.ts.
 */
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { type CountResult, countGroup, straceAvailable } from './counts.js';
import {
  type BenchModule,
  bareOf,
  type LoadResult,
  measureApp,
  measureRounds,
  portOpen,
  settings,
} from './harness.js';
import { benchmarksMarkdown, type GroupResult, ratioChart, resultsSection } from './report.js';
import { measureHandoff } from './sequential.js';
import { selectedWorkloads, type Workload, type WorkloadName } from './workloads.js';

const started = performance.now();
const benchDir = fileURLToPath(new URL('.', import.meta.url));
const wanted = process.argv.slice(2);
let workloads: Workload[];
try {
  workloads = selectedWorkloads();
} catch (error) {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
}

const files = (await readdir(benchDir))
  .filter((file) => file.endsWith('.bench.ts'))
  .filter((file) => wanted.length === 0 || wanted.includes(file.replace(/\.bench\.ts$/, '')))
  .sort((left, right) =>
    left === 'array.bench.ts' ? -1 : right === 'array.bench.ts' ? 1 : left.localeCompare(right),
  );

if (files.length === 0) {
  process.stderr.write(`bench: no bench file matches ${wanted.join(', ')}\n`);
  process.exit(1);
}

const print = (text: string) => process.stdout.write(text);

print(
  `keepsake bench — Node ${process.version}, ${os.cpus().length} CPUs; workloads ${workloads.map((w) => w.name).join(', ')}; ` +
    `${settings.connections} connections, ${settings.sessions} sessions, ${settings.durationSeconds} s per run after ${settings.warmupSeconds} s warm-up, ` +
    `median of ${settings.rounds} rounds, ${settings.parallelRequests} parallel requests per lost-update check, ` +
    `${settings.countedRequests} counted requests per app and workload${settings.smoke ? ' (smoke run)' : ''}\n`,
);
if (!(await straceAvailable())) {
  print(
    '*** strace not found: round trips and durable writes are not counted (apt-get install -y strace) ***\n',
  );
}
print('\n');

const results: GroupResult[] = [];
const counts: CountResult[] = [];
const extras: string[] = [];
const handoffs: string[] = [];

for (const file of files) {
  const modulePath = `${benchDir}${file}`;
  const benchModule = (await import(pathToFileURL(modulePath).href)) as BenchModule;
  for (const group of benchModule.groups) {
    if (group.requires !== undefined) {
      const { name, host, port } = group.requires;
      if (!(await portOpen(host, port))) {
        print(`*** skipping ${group.title}: ${name} is not reachable on ${host}:${port} ***\n`);
        continue;
      }
    }
    const groupStarted = performance.now();
    print(`${group.title}: `);
    const bare = bareOf(group);
    const names = [bare, group.keepsake, group.peer, ...(group.reference ? [group.reference] : [])];
    const measured = await measureRounds(
      names,
      (name) => measureApp(group, modulePath, name, workloads),
      print,
    );
    // A sessionless app ran one workload; its result stands for all of them.
    const result = (name: string, workload: WorkloadName): LoadResult => {
      const runs = measured.get(name);
      const found = runs?.get(workload) ?? (runs?.size === 1 ? [...runs.values()][0] : undefined);
      if (found === undefined) throw new Error(`bench: ${name} was not measured on ${workload}`);
      return found;
    };
    for (const { name: workload } of workloads) {
      results.push({
        store: group.title,
        workload,
        keepsake: result(group.keepsake, workload),
        peer: result(group.peer, workload),
        bare: result(bare, workload),
        ...(group.reference ? { reference: result(group.reference, workload) } : {}),
      });
    }
    // The handoff serves keepsake in this process, which hosts Express apps only.
    const buildKeepsake = group.server === undefined ? benchModule.apps[group.keepsake] : undefined;
    if (buildKeepsake !== undefined) {
      const handoff = await measureHandoff(await buildKeepsake({}), settings.handoffRequests);
      const ratio = handoff.concurrentMs / (handoff.requests * handoff.oneRequestMs);
      handoffs.push(
        `  ${group.keepsake}: one request ${handoff.oneRequestMs.toFixed(2)} ms; ${handoff.requests} at once ${handoff.concurrentMs.toFixed(0)} ms = **${ratio.toFixed(2)}×** ${handoff.requests} × one (target ≤ 1.2×: ${ratio <= 1.2 ? 'met' : 'missed'})`,
      );
    }
    const seconds = (since: number) => `${((performance.now() - since) / 1000).toFixed(0)} s`;
    print(`(${seconds(groupStarted)}) `);
    if (group.countingStore !== undefined) {
      const countingStarted = performance.now();
      print('| counting: ');
      counts.push(...(await countGroup(group, modulePath, workloads, print)));
      print(`(${seconds(countingStarted)})`);
    }
    print('\n');
  }
  if (benchModule.extras !== undefined) extras.push(...(await benchModule.extras()));
}

if (handoffs.length > 0) {
  extras.unshift(
    '- **Lock handoff** (counter requests on one session, keepsake served in the bench process: sequential, then all at once):',
    ...handoffs,
  );
}

const stamp = new Date().toISOString();
const report = {
  stamp,
  node: process.version,
  cpus: os.cpus().length,
  settings,
  workloads,
  results,
  counts,
  extras,
  chartFile: 'benchmarks.svg',
};
print(`\n${resultsSection(report)}\n`);

const resultsDir = fileURLToPath(new URL('./results/', import.meta.url));
await mkdir(resultsDir, { recursive: true });
await writeFile(`${resultsDir}latest.json`, `${JSON.stringify(report, null, 2)}\n`);
await writeFile(`${resultsDir}benchmarks.md`, benchmarksMarkdown(report));
if (results.length > 0) {
  const caption = `keepsake ÷ peer, requests/s per workload (${settings.connections} connections, ${stamp.slice(0, 10)})`;
  await writeFile(`${resultsDir}${report.chartFile}`, ratioChart(results, workloads, caption));
}
const minutes = (performance.now() - started) / 60_000;
print(
  `\nSaved bench/results/benchmarks.md (Method and Results, ready for docs/benchmarks.md), ` +
    `bench/results/benchmarks.svg and bench/results/latest.json — ${minutes.toFixed(1)} min\n`,
);
