#!/usr/bin/env node
/** The `keepsake` command line: `keepsake migration …` (alias `session:migration`). */
import { type CliOutput, runMigrationCommand, USAGE, UsageError } from './migration.js';

const COMMANDS = new Set(['migration', 'session:migration']);

/** Runs the CLI with `argv` (without node and the script); returns the exit code. */
async function main(argv: readonly string[], output: CliOutput): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined) {
    output.stderr(USAGE);
    return 2;
  }
  if (command === '--help' || command === '-h' || command === 'help') {
    output.stdout(USAGE);
    return 0;
  }
  try {
    if (!COMMANDS.has(command)) throw new UsageError(`unknown command "${command}".`);
    return await runMigrationCommand(rest, output);
  } catch (error) {
    if (error instanceof UsageError) {
      output.stderr(`keepsake: ${error.message}\n\n${USAGE}`);
      return 2;
    }
    output.stderr(`keepsake: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2), {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
});
