import type { BenchGroup, LoadResult } from './harness.js';

export interface GroupResult {
  group: BenchGroup;
  bare: LoadResult;
  keepsake: LoadResult;
  peer: LoadResult;
  reference?: LoadResult;
}

const number = (value: number, digits = 0) =>
  value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

function lost(result: LoadResult): string {
  return result.lostUpdates === null ? '–' : `${result.lostUpdates} / ${result.increments}`;
}

/** The Markdown table printed by `npm run bench` and pasted into notes and docs. */
export function markdownTable(results: readonly GroupResult[]): string {
  const lines = [
    '| store | app | req/s | p50 ms | p99 ms | failed | lost updates | keepsake ÷ this |',
    '|---|---|---:|---:|---:|---:|---:|---:|',
  ];
  for (const { group, bare, keepsake, peer, reference } of results) {
    for (const result of [keepsake, peer, bare, ...(reference ? [reference] : [])]) {
      const ratio =
        result === keepsake
          ? '–'
          : `${number(keepsake.requestsPerSecond / result.requestsPerSecond, 2)}×`;
      lines.push(
        `| ${group.title} | ${result.app} | ${number(result.requestsPerSecond)} | ${number(result.p50Ms, 1)} | ${number(result.p99Ms, 1)} | ${result.failures} | ${lost(result)} | ${ratio} |`,
      );
    }
  }
  return lines.join('\n');
}

/** A horizontal bar chart of requests/s per group (keepsake, peer, bare), as standalone SVG. */
export function svgChart(results: readonly GroupResult[], caption: string): string {
  const barHeight = 16;
  const rowGap = 4;
  const groupGap = 18;
  const labelWidth = 230;
  const chartWidth = 520;
  const max = Math.max(
    1,
    ...results
      .flatMap((result) => [result.bare, result.keepsake, result.peer])
      .map((r) => r.requestsPerSecond),
  );
  const colors = { keepsake: '#2e7d32', peer: '#9e9e9e', bare: '#cfd8dc' };
  const parts: string[] = [];
  let y = 40;
  for (const result of results) {
    parts.push(`<text x="8" y="${y - 6}" font-weight="bold">${result.group.title}</text>`);
    for (const [kind, load] of [
      ['keepsake', result.keepsake],
      ['peer', result.peer],
      ['bare', result.bare],
    ] as const) {
      const width = Math.max(1, (load.requestsPerSecond / max) * chartWidth);
      parts.push(
        `<text x="16" y="${y + 12}">${load.app}</text>`,
        `<rect x="${labelWidth}" y="${y}" width="${width.toFixed(1)}" height="${barHeight}" fill="${colors[kind]}"/>`,
        `<text x="${labelWidth + width + 6}" y="${y + 12}">${number(load.requestsPerSecond)} req/s</text>`,
      );
      y += barHeight + rowGap;
    }
    y += groupGap;
  }
  const height = y + 10;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${labelWidth + chartWidth + 140}" height="${height}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="8" y="18" font-size="14" font-weight="bold">${caption}</text>
${parts.join('\n')}
</svg>
`;
}
