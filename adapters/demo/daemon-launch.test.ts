/**
 * How `reserve daemon` is launched (bin/daemon-launch.mjs): started without its Node flags it runs itself again
 * with them, the launcher passes signals on and exits as the daemon does, and a signal that reaches both processes
 * stops the daemon once, cleanly. The fleet gives the flags itself, so the process it starts is the daemon.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { DAEMON_NODE_FLAGS, hasDaemonFlags } from '../../bin/daemon-launch.mjs';
import { DAEMON_FILE, type DaemonFile } from '../daemon/api.ts';
import { Fleet } from './fleet.ts';

const BIN = fileURLToPath(new URL('../../bin/reserve.mjs', import.meta.url));
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const cmdline = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('hasDaemonFlags', () => {
  it('is true only when every daemon flag is given, in the arguments or NODE_OPTIONS, with any value', () => {
    expect(DAEMON_NODE_FLAGS.length).toBeGreaterThan(0);
    expect(hasDaemonFlags([], '')).toBe(false);
    expect(hasDaemonFlags(['--import', 'tsx'], '--enable-source-maps')).toBe(false);
    expect(hasDaemonFlags([...DAEMON_NODE_FLAGS], '')).toBe(true);
    expect(hasDaemonFlags([], DAEMON_NODE_FLAGS.join(' '))).toBe(true);
    expect(hasDaemonFlags(DAEMON_NODE_FLAGS.map((f) => `${f.split('=')[0].replace(/-/g, '_').replace(/^__/, '--')}=64`), '')).toBe(true);
  });
});

describe.runIf(process.platform === 'linux')('reserve daemon launched without its Node flags', () => {
  const scratch: string[] = [];
  afterAll(async () => {
    for (const d of scratch) await fs.rm(d, { recursive: true, force: true });
  });

  async function startBare(dataDir: string) {
    await fs.rm(join(dataDir, DAEMON_FILE), { force: true });
    const env = { ...process.env };
    delete env.RESERVE_DAEMON_REEXEC;
    delete env.NODE_OPTIONS;
    const launcher = spawn(process.execPath, [BIN, 'daemon', '--data', dataDir, '--json'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    launcher.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    launcher.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
    const exited = new Promise<number | null>((r) => launcher.on('exit', (c) => r(c)));
    for (let i = 0; ; i++) {
      try {
        const file = JSON.parse(await fs.readFile(join(dataDir, DAEMON_FILE), 'utf8')) as DaemonFile;
        return { launcher, file, exited, output: () => out };
      } catch {
        if (i > 600) throw new Error(`the daemon did not start:\n${out}`);
        await sleep(100);
      }
    }
  }

  it('runs itself again with the flags; SIGTERM to the launcher, or a signal to both, stops the daemon cleanly', async () => {
    const base = await fs.mkdtemp(join(tmpdir(), 'reserve-daemon-launch-'));
    scratch.push(base);
    const fleet = new Fleet(base);
    const dataDir = fleet.dataDir('box');
    await fleet.json(['init', '--listen', '/ip4/127.0.0.1/tcp/0', '--data', dataDir]);

    // 1: SIGTERM to the launcher alone is passed on.
    const a = await startBare(dataDir);
    expect(a.file.pid).not.toBe(a.launcher.pid);
    for (const f of DAEMON_NODE_FLAGS) expect(cmdline(a.file.pid)).toContain(f);
    expect(cmdline(a.launcher.pid!)).not.toContain(DAEMON_NODE_FLAGS[0]);
    a.launcher.kill('SIGTERM');
    expect(await a.exited).toBe(0);
    expect(alive(a.file.pid)).toBe(false);
    expect(a.output()).toContain('"type":"stopped"');

    // 2: the same signal to both (Ctrl-C in a terminal reaches the whole process group): one clean stop.
    const b = await startBare(dataDir);
    process.kill(b.file.pid, 'SIGINT');
    b.launcher.kill('SIGINT');
    expect(await b.exited).toBe(0);
    expect(alive(b.file.pid)).toBe(false);
    expect(b.output().match(/"type":"stopping"/g)).toHaveLength(1);
    expect(b.output()).toContain('"type":"stopped"');

    // 3: the fleet passes the flags itself: the process it starts is the daemon.
    const d = await fleet.startDaemon('box');
    expect(d.file.pid).toBe(d.child.pid);
    for (const f of DAEMON_NODE_FLAGS) expect(cmdline(d.child.pid!)).toContain(f);
    await fleet.stopAll();
  }, 120_000);
});
