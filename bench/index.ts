/**
 * `npm run bench [-- name…]`: runs every bench/<name>.bench.ts (or the named ones). Each group
 * measures keepsake, its peer library and a bare Express app under the same load in separate server
 * processes, then prints a Markdown table with the ratios and the lost-update counts.
 */
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { type BenchModule, measure, measureRounds, settings } from './harness.js';
import { type GroupResult, markdownTable, svgChart } from './report.js';
import { measureHandoff } from './sequential.js';

const benchDir = fileURLToPath(new URL('.', import.meta.url));
const wanted = process.argv.slice(2);

function reachable(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    socket.setTimeout(1_000, () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
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

process.stdout.write(
  `keepsake bench — Node ${process.version}, ${os.cpus().length} CPUs, ${settings.connections} connections, ` +
    `${settings.sessions} sessions, ${settings.durationSeconds} s per app and round, median of ${settings.rounds} rounds, ` +
    `${settings.increments} parallel increments per round for lost updates\n\n`,
);

const results: GroupResult[] = [];
const extras: string[] = [];
const handoffs: string[] = [];
for (const file of files) {
  const modulePath = `${benchDir}${file}`;
  const benchModule = (await import(pathToFileURL(modulePath).href)) as BenchModule;
  for (const group of benchModule.groups) {
    if (group.requires !== undefined) {
      const { name, host, port } = group.requires;
      if (!(await reachable(host, port))) {
        process.stdout.write(
          `*** skipping ${group.title}: ${name} is not reachable on ${host}:${port} ***\n`,
        );
        continue;
      }
    }
    process.stdout.write(`${group.title}: `);
    const names = [
      'bare',
      group.keepsake,
      group.peer,
      ...(group.reference ? [group.reference] : []),
    ];
    const measured = await measureRounds(
      names,
      (name) => measure(modulePath, name, name === 'bare' || name === group.reference),
      (text) => process.stdout.write(text),
    );
    process.stdout.write('\n');
    const result = (name: string) => {
      const found = measured.get(name);
      if (found === undefined) throw new Error(`bench: ${name} was not measured`);
      return found;
    };
    const buildKeepsake = benchModule.apps[group.keepsake];
    if (buildKeepsake === undefined) throw new Error(`bench: ${file} has no app ${group.keepsake}`);
    const handoff = await measureHandoff(await buildKeepsake());
    const ratio = handoff.concurrentMs / (handoff.requests * handoff.oneRequestMs);
    handoffs.push(
      `  ${group.keepsake}: one request ${handoff.oneRequestMs.toFixed(2)} ms; ${handoff.requests} at once ${handoff.concurrentMs.toFixed(0)} ms = **${ratio.toFixed(2)}×** ${handoff.requests} × one (target ≤ 1.2×: ${ratio <= 1.2 ? 'met' : 'missed'})`,
    );
    results.push({
      group,
      bare: result('bare'),
      keepsake: result(group.keepsake),
      peer: result(group.peer),
      ...(group.reference ? { reference: result(group.reference) } : {}),
    });
  }
  if (benchModule.extras !== undefined) extras.push(...(await benchModule.extras()));
}

if (handoffs.length > 0) {
  extras.unshift(
    '- **Lock handoff** (requests on one session, keepsake served in this process: sequential, then all at once):',
    ...handoffs,
  );
}
const table = markdownTable(results);
process.stdout.write(`\n${table}\n`);
if (extras.length > 0) process.stdout.write(`\n${extras.join('\n')}\n`);

const resultsDir = fileURLToPath(new URL('./results/', import.meta.url));
await mkdir(resultsDir, { recursive: true });
const stamp = new Date().toISOString();
await writeFile(
  `${resultsDir}latest.json`,
  `${JSON.stringify({ stamp, settings, node: process.version, results, extras }, null, 2)}\n`,
);
await writeFile(`${resultsDir}latest.md`, `${table}\n\n${extras.join('\n')}\n`);
if (results.length > 0) {
  const caption = `keepsake vs peers — requests/s (${settings.connections} connections, ${stamp.slice(0, 10)})`;
  await writeFile(`${resultsDir}chart.svg`, svgChart(results, caption));
}
process.stdout.write(`\nSaved bench/results/latest.{json,md} and bench/results/chart.svg\n`);
