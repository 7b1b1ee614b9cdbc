/**
 * The `reserve` program with only the local-repository commands (backup, restore, snapshots, verify with --repo),
 * for bin/reserve.mjs to run from a bundle: the data path starts in milliseconds instead of loading every command
 * module through tsx. Same commands, same options, same output as the full program.
 */
import { Command, CommanderError } from 'commander';
import { CliExit, EXIT } from '../adapters/cli/output.ts';
import { register } from '../adapters/cli/snapshot-commands.ts';

export async function main(argv: string[]): Promise<number> {
  const program = new Command('reserve').showHelpAfterError('(run with --help for usage)').exitOverride();
  register(program);
  try {
    await program.parseAsync(argv);
    return EXIT.ok;
  } catch (err) {
    if (err instanceof CliExit) return err.code;
    if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    process.stderr.write(`reserve: internal error: ${(err as Error)?.stack ?? String(err)}\n`);
    return EXIT.internal;
  }
}
