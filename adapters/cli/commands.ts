/**
 * Every command module the `reserve` program is built from. Add one line per module; nothing else needs to change.
 * A module exports `register(program)` and adds its own subcommand(s) with `--help` text and a `--json` flag.
 */
import type { Command } from 'commander';
import { register as registerSim } from './sim.ts';
import { register as registerSnapshots } from './snapshot-commands.ts';
import { register as registerDemo } from './demo.ts';
import { register as registerReserve } from './reserve-commands.ts';

export const registrars: Array<(program: Command) => void> = [
  registerReserve,
  registerSnapshots,
  registerDemo,
  registerSim,
];
