/**
 * The three backup tools the benchmark drives, each behind the same small interface: create a fresh repository
 * (not timed), then the commands to time (backup, verify, restore). Every tool keeps its caches under the
 * benchmark's work directory so a fresh repository starts with a fresh cache and nothing leaks into $HOME.
 */
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { run, type Command } from './backup-measure.ts';

export type ToolName = 'reserve' | 'restic' | 'borg';
export const TOOL_NAMES: readonly ToolName[] = ['reserve', 'restic', 'borg'];

export interface Tool {
  readonly name: ToolName;
  version(): string;
  /** Remove any previous repository (and its caches) and create an empty one. Not timed. */
  reset(): void;
  backup(source: string, label: string): Command;
  verify(): Command;
  /** Restore the latest snapshot into `target`, an existing empty directory. */
  restore(target: string): Command;
  /** Where, under `target`, the restored copy of `source` lands. */
  restoredRoot(target: string, source: string): string;
  /** The repository directory (for its size). */
  readonly repo: string;
}

/** The project root: simulations/bench/../.. */
export const PROJECT_ROOT = resolve(import.meta.dirname, '..', '..');

class ReserveTool implements Tool {
  readonly name = 'reserve';
  readonly repo: string;
  readonly #root: string;
  readonly #bin: string;

  constructor(
    work: string,
    /** The Reserve checkout under test (default this project). */
    root: string = PROJECT_ROOT,
    /** Extra node flags (e.g. --cpu-prof) for profiling runs. */
    readonly nodeFlags: string[] = [],
  ) {
    this.repo = join(work, 'reserve-repo');
    this.#root = root;
    this.#bin = join(root, 'bin', 'reserve.mjs');
  }

  version(): string {
    const pkg = run(process.execPath, ['-p', `require(${JSON.stringify(join(this.#root, 'package.json'))}).version`]).trim();
    return `reserve ${pkg} (node ${process.version}${this.#root === PROJECT_ROOT ? '' : `, from ${this.#root}`})`;
  }

  reset(): void {
    rmSync(this.repo, { recursive: true, force: true });
    // `reserve backup` creates the repository when the path is new.
  }

  #node(args: string[]): Command {
    return { cmd: process.execPath, args: [...this.nodeFlags, this.#bin, ...args], cwd: this.#root };
  }

  backup(source: string): Command {
    return this.#node(['backup', source, '--repo', this.repo, '--json']);
  }

  verify(): Command {
    return this.#node(['verify', '--repo', this.repo, '--json']);
  }

  restore(target: string): Command {
    return this.#node(['restore', 'latest', target, '--repo', this.repo, '--json']);
  }

  restoredRoot(target: string): string {
    return target;
  }
}

class ResticTool implements Tool {
  readonly name = 'restic';
  readonly repo: string;
  readonly #env: Record<string, string>;
  readonly #cache: string;

  constructor(work: string) {
    this.repo = join(work, 'restic-repo');
    this.#cache = join(work, 'restic-cache');
    this.#env = { RESTIC_PASSWORD: 'reserve-bench', RESTIC_REPOSITORY: this.repo, RESTIC_CACHE_DIR: this.#cache };
  }

  version(): string {
    return run('restic', ['version']).trim();
  }

  reset(): void {
    rmSync(this.repo, { recursive: true, force: true });
    rmSync(this.#cache, { recursive: true, force: true });
    run('restic', ['init', '--quiet'], { env: this.#env });
  }

  backup(source: string): Command {
    return { cmd: 'restic', args: ['backup', '--quiet', source], env: this.#env };
  }

  verify(): Command {
    return { cmd: 'restic', args: ['check', '--read-data', '--quiet'], env: this.#env };
  }

  restore(target: string): Command {
    return { cmd: 'restic', args: ['restore', 'latest', '--target', target, '--quiet'], env: this.#env };
  }

  restoredRoot(target: string, source: string): string {
    return join(target, source); // restic recreates the absolute source path under the target
  }
}

class BorgTool implements Tool {
  readonly name = 'borg';
  readonly repo: string;
  readonly #base: string;
  readonly #env: Record<string, string>;

  constructor(work: string) {
    this.repo = join(work, 'borg-repo');
    this.#base = join(work, 'borg-home');
    this.#env = {
      BORG_REPO: this.repo,
      BORG_BASE_DIR: this.#base,
      BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes',
      BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes',
    };
  }

  version(): string {
    return run('borg', ['--version']).trim();
  }

  reset(): void {
    rmSync(this.repo, { recursive: true, force: true });
    rmSync(this.#base, { recursive: true, force: true });
    mkdirSync(this.#base, { recursive: true });
    run('borg', ['init', '--encryption', 'none'], { env: this.#env });
  }

  backup(source: string, label: string): Command {
    return { cmd: 'borg', args: ['create', `::${label}`, source], env: this.#env };
  }

  verify(): Command {
    return { cmd: 'borg', args: ['check', '--verify-data'], env: this.#env };
  }

  restore(target: string): Command {
    // The newest archive: `borg extract` takes a name, so ask for the last one first (not timed; it is tiny).
    const last = run('borg', ['list', '--last', '1', '--short'], { env: this.#env }).trim();
    return { cmd: 'borg', args: ['extract', `::${last}`], cwd: target, env: this.#env };
  }

  restoredRoot(target: string, source: string): string {
    return join(target, source); // borg stores the path without its leading slash and extracts it under the cwd
  }
}

export function makeTool(name: ToolName, work: string, reserveRoot: string = PROJECT_ROOT): Tool {
  if (!existsSync(work)) mkdirSync(work, { recursive: true });
  switch (name) {
    case 'reserve':
      return new ReserveTool(work, reserveRoot);
    case 'restic':
      return new ResticTool(work);
    case 'borg':
      return new BorgTool(work);
  }
}

export function makeProfiledReserve(work: string, profileDir: string, reserveRoot: string = PROJECT_ROOT): Tool {
  return new ReserveTool(work, reserveRoot, ['--cpu-prof', '--cpu-prof-dir', profileDir, '--cpu-prof-interval', '500']);
}
