/**
 * The TypeScript and JavaScript code blocks of the documentation: README.md and docs/**\/*.md.
 *
 * A block is a fenced block (``` or ~~~) whose info string starts with ts, typescript, js or
 * javascript. Words after the language are flags: `partial` marks a block that is deliberately
 * incomplete (a signature, a fragment using an `app` or `req` it does not declare), which is only
 * parsed, not type-checked. A block whose first line is a comment naming a file
 * (`// server.ts — run with …`) is that file: other blocks of the same page can import it
 * (`./server.js`), and its extension decides how it is checked (`.cjs`: a CommonJS script).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

export type Language = 'ts' | 'js';

export interface Block {
  /** The Markdown file, relative to the repository (`docs/frameworks/express.md`). */
  readonly page: string;
  /** The line of the opening fence, 1-based. */
  readonly line: number;
  readonly language: Language;
  /** The words of the info string after the language. */
  readonly flags: readonly string[];
  readonly code: string;
  /** The file name the block's first line gives it (`server.ts`), if any. */
  readonly name: string | null;
}

const LANGUAGES: Record<string, Language> = {
  ts: 'ts',
  typescript: 'ts',
  js: 'js',
  javascript: 'js',
};

/** An opening or closing fence, at any indentation (a block may sit in a list item). */
const FENCE = /^( *)(`{3,}|~{3,})(.*)$/;
const NAMED = /^\/\/\s*([\w.-]+\.(?:ts|mts|cts|js|mjs|cjs))(?:\s|$)/;

/** The code blocks of one Markdown text. */
export function blocksOf(page: string, markdown: string): Block[] {
  const lines = markdown.split('\n');
  const blocks: Block[] = [];
  let index = 0;
  while (index < lines.length) {
    const open = FENCE.exec(lines[index] ?? '');
    if (open === null) {
      index += 1;
      continue;
    }
    const [, indent = '', fence = '', info = ''] = open;
    const start = index;
    const body: string[] = [];
    index += 1;
    while (index < lines.length) {
      const text = lines[index] ?? '';
      const close = FENCE.exec(text);
      const closes =
        close !== null &&
        close[2]?.[0] === fence[0] &&
        (close[2]?.length ?? 0) >= fence.length &&
        (close[3] ?? '').trim() === '';
      if (closes) break;
      body.push(text.startsWith(indent) ? text.slice(indent.length) : text.trimStart());
      index += 1;
    }
    index += 1;
    const [word = '', ...flags] = info.trim().split(/\s+/);
    const language = LANGUAGES[word.toLowerCase()];
    if (language === undefined) continue;
    const code = `${body.join('\n')}\n`;
    blocks.push({
      page,
      line: start + 1,
      language,
      flags,
      code,
      name: NAMED.exec(body[0] ?? '')?.[1] ?? null,
    });
  }
  return blocks;
}

/** README.md and every Markdown file under docs/, relative to `root`, sorted. */
export function documentationPages(root: string): string[] {
  const pages = ['README.md'];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.md')) pages.push(relative(root, path));
    }
  };
  walk(join(root, 'docs'));
  return pages.sort();
}

/** Every code block of the documentation. */
export function documentationBlocks(root: string): Block[] {
  return documentationPages(root).flatMap((page) =>
    blocksOf(page, readFileSync(join(root, page), 'utf8')),
  );
}
