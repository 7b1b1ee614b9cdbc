/**
 * `reserve sim ...`: the simulation and resilience commands. Each subcommand lives in its own module and is
 * listed here; add one line per module.
 */
import type { Command } from 'commander';
import { register as registerDurability } from './sim-durability.ts';
import { register as registerRun } from './sim-run.ts';
import { registerPlacement } from './sim-placement.ts';

export const simRegistrars: Array<(sim: Command) => void> = [
  registerRun,
  registerDurability,
  registerPlacement,
];

export function register(program: Command): void {
  const sim = program.command('sim').description('resilience experiments: placement, simulated reserves, durability');
  for (const register of simRegistrars) register(sim);
}
