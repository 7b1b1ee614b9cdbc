/** The `reserve` command line. Each command lives in its own module and registers itself on the program. */
import { Command, CommanderError } from 'commander';
import { CliExit, EXIT } from './output.ts';
import { registrars } from './commands.ts';

export function buildProgram(): Command {
  const program = new Command('reserve')
    .description('Reserve: your Boxes back each other up. Content-addressed snapshots, kept on several Boxes.')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  for (const register of registrars) register(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return EXIT.ok;
  } catch (err) {
    if (err instanceof CliExit) return err.code;
    if (err instanceof CommanderError) {
      // --help and --version end here with exit code 0; usage errors were already printed by commander.
      return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    process.stderr.write(`reserve: internal error: ${(err as Error)?.stack ?? String(err)}\n`);
    return EXIT.internal;
  }
}
