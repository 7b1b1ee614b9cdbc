/**
 * The `reserve` command as a person runs it, in child processes on 127.0.0.1: init, daemon, invite, join, status
 * (through the daemon and in-process), leave and remove, the refusals a person meets, and a clean stop on SIGTERM.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DaemonFile, ReserveStatus } from '../daemon/api.ts';

const BIN = fileURLToPath(new URL('../../bin/reserve.mjs', import.meta.url));
const LISTEN = '/ip4/127.0.0.1/tcp/0';
let base: string;
const children = new Set<ChildProcess>();

beforeAll(async () => {
  base = await fs.mkdtemp(join(tmpdir(), 'reserve-cli-'));
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await fs.rm(base, { recursive: true, force: true });
});

function run(args: string[], timeoutMs = 30_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ code, stdout, stderr });
    });
  });
}

async function json<T>(args: string[]): Promise<T> {
  const r = await run([...args, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as T;
}

describe('reserve init | daemon | invite | join | status | leave | remove', () => {
  it('found, run, invite, join, look at a reserve and leave it from the command line', async () => {
    const a = join(base, 'a');
    const b = join(base, 'b');
    const t0 = performance.now();
    const founded = await json<{ reserveId: string; box: string; dataDir: string }>(['init', '--data', a, '--listen', LISTEN, '--capacity', '500G', '--region', 'home', '--rf', '3', '--min-rf', '2', '--repair-grace', '30s']);
    expect(founded.dataDir).toBe(a);
    expect((await fs.stat(join(a, 'keys', 'box.key'))).mode & 0o777).toBe(0o600);

    const daemon = spawn(process.execPath, [BIN, 'daemon', '--data', a, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(daemon);
    let out = '';
    daemon.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    let file: DaemonFile | undefined;
    for (let i = 0; i < 200 && !file; i++) {
      await new Promise((r) => setTimeout(r, 100));
      file = await fs
        .readFile(join(a, 'daemon.json'), 'utf8')
        .then((t) => JSON.parse(t) as DaemonFile)
        .catch(() => undefined);
    }
    // `reserve daemon` re-runs itself with the daemon's Node flags (bin/daemon-launch.mjs): the Box is that child
    const parentOf = async (pid: number) => Number((await fs.readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1].split(' ')[1]);
    expect(file).toBeDefined();
    expect(await parentOf(file!.pid)).toBe(daemon.pid);
    expect((await fs.stat(join(a, 'daemon.json'))).mode & 0o777).toBe(0o600);
    expect(JSON.parse(out.split('\n')[0])).toMatchObject({ type: 'ready', box: founded.box });
    // a second process on the same data dir is refused, naming the daemon
    const locked = await run(['daemon', '--data', a]);
    expect(locked.code).toBe(2);
    expect(locked.stderr).toContain(`in use by process ${file!.pid}`);

    const invite = await run(['invite', '--data', a, '--json']);
    expect(invite.stderr).toMatch(/holds the reserve secret/);
    const inv = JSON.parse(invite.stdout) as { token: string; reserveId: string; bootstrap: string[] };
    expect(inv.bootstrap).toEqual(file!.addresses);
    expect(inv.token.startsWith('reserve1.')).toBe(true);

    const bad = await run(['join', inv.token.slice(0, 40), '--data', b]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/invite token/);
    const joined = await json<{ reserveId: string; box: string; members: number }>(['join', inv.token, '--data', b, '--listen', LISTEN, '--capacity', '1T']);
    expect(joined).toMatchObject({ reserveId: founded.reserveId, members: 2 });

    // through the daemon, and in-process (b has no daemon: the command becomes the Box for a moment)
    const viaDaemon = await json<ReserveStatus>(['status', '--data', a]);
    const inProcess = await json<ReserveStatus>(['status', '--data', b]);
    for (const s of [viaDaemon, inProcess]) {
      expect(s.reserveId).toBe(founded.reserveId);
      expect(s.replication).toEqual({ target: 3, minimum: 2 });
      expect(s.boxes.map((x) => x.id).sort()).toEqual([founded.box, joined.box].sort());
    }
    expect(inProcess.self).toBe(joined.box);
    expect(inProcess.boxes.find((x) => x.id === founded.box)).toMatchObject({ reachable: true, capacity: 500e9, region: 'home' });
    expect(viaDaemon.boxes.find((x) => x.self)!.capacity).toBe(500e9);

    // taking b out again: refused while it would leave fewer Boxes than the minimum (2), unless forced
    const unknown = await run(['remove', 'no-such-box', '--data', a]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('no Box of this reserve has the id "no-such-box"');
    const refused = await run(['leave', '--data', b]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/1 Box would remain, fewer than the minimum of 2 copies.*--force/);
    const left = await json<{ box: string; remaining: number; confirmedBy: string[] }>(['leave', '--data', b, '--force']);
    expect(left).toMatchObject({ box: joined.box, remaining: 1, confirmedBy: [founded.box] });
    expect((await json<ReserveStatus>(['status', '--data', a])).boxes.find((x) => x.id === joined.box)?.status).toBe('left');
    const after = await run(['daemon', '--data', b]);
    expect(after.code).toBe(2);
    expect(after.stderr).toMatch(/this Box left reserve .* and is no longer a member/);

    const stopped = new Promise<number | null>((r) => daemon.on('exit', (code) => r(code)));
    daemon.kill('SIGTERM');
    expect(await stopped).toBe(0);
    await expect(fs.access(join(a, 'daemon.json'))).rejects.toThrow();
    await expect(fs.access(join(a, 'LOCK'))).rejects.toThrow();
    console.log(`CLI smoke: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }, 120_000); // a dozen Node processes, most of them a Box for a moment: about 20 s on an idle 2-core machine
});
