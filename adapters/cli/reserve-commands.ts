/**
 * `reserve init | invite | join | daemon | status | events | leave | remove`: setting up a reserve of Boxes,
 * running one, and taking Boxes out of it.
 *
 *   reserve init --data /srv/box --capacity 2T --region home     found a reserve (this Box is its first member)
 *   reserve invite --data /srv/box                               a join token for a new Box (it holds the secret)
 *   reserve join <token> --data /srv/box2                        a factory-new Box joins
 *   reserve daemon --data /srv/box                               run the Box; serve its API on 127.0.0.1
 *   reserve status --data /srv/box                               each Box and each snapshot's protection
 *   reserve events --data /srv/box --follow                      the reserve's events
 *   reserve leave --data /srv/box                                this Box hands its blocks over and leaves
 *   reserve remove <box> --data /srv/box                         decommission another Box (lost, stolen, sold)
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs/promises';
import { join, resolve as resolvePath } from 'node:path';
import type { Command } from 'commander';
import { NotJoinedError } from '../../core/box/box.ts';
import { InvalidInputError } from '../../core/errors.ts';
import { describeEvent, humanDuration } from '../../core/events/describe.ts';
import type { EventEnvelope, Severity } from '../../core/events/types.ts';
import { DAEMON_FILE, type DaemonFile, type LeaveReport, type RemoveReport, type ReserveStatus } from '../daemon/api.ts';
import type { BoxNotice } from '../runtime/runtime.ts';
import { formatBytes, parseDuration, parseSize } from '../runtime/units.ts';
import { EXIT, action, emit, jsonReplacer, progressBar, type GlobalOptions } from './output.ts';

// The Box runtime (libp2p, storage, workers) loads only when a command needs it: `reserve --help` stays fast.
const runtime = () => import('../runtime/index.ts');
const session = () => import('./box-session.ts');

interface DataOpts extends GlobalOptions {
  data: string;
}

interface NewBoxOpts extends DataOpts {
  listen?: string;
  capacity?: string;
  region?: string;
}

const SEVERITIES = ['normal', 'warning', 'failure'];

function listenOf(text: string | undefined): string[] | undefined {
  if (text === undefined) return undefined;
  const list = text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const a of list) if (!/^(\/[^/\s]+)+$/.test(a)) throw new InvalidInputError(`--listen ${JSON.stringify(a)} is not a multiaddr (e.g. /ip4/0.0.0.0/tcp/7447)`);
  return list.length ? list : undefined;
}

function intOf(text: string, what: string, min: number, max: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max) throw new InvalidInputError(`${what} must be a whole number from ${min} to ${max}, got ${JSON.stringify(text)}`);
  return n;
}

const time = (ms: number) => new Date(ms).toISOString().slice(0, 19).replace('T', ' ');
const short = (id: string) => (id.length > 16 ? `…${id.slice(-10)}` : id);

function ago(ms: number | null, now: number): string {
  if (ms === null) return 'never';
  return now - ms < 5000 ? 'now' : `${humanDuration(now - ms)} ago`;
}

function eventLine(e: EventEnvelope): string {
  return `${time(e.time)} ${e.severity.padEnd(7)} ${e.kind.padEnd(26)} ${short(e.source).padEnd(12)} ${describeEvent(e)}`;
}

function noticeLine(n: BoxNotice): string {
  const { type, ...rest } = n as { type: string } & Record<string, unknown>;
  const parts = Object.entries(rest).map(([k, v]) => `${k}=${typeof v === 'string' ? short(v) : typeof v === 'object' ? JSON.stringify(v, jsonReplacer).slice(0, 120) : String(v)}`);
  return `${time(Date.now())} notice  ${type.padEnd(26)} ${parts.join(' ')}`;
}

function statusText(s: ReserveStatus): string {
  const lines = [`reserve ${s.reserveId}: replication target ${s.replication.target} copies, minimum ${s.replication.minimum}`, ''];
  lines.push('BOX              STATUS          REACHABLE  CAPACITY    USED        LAST SEEN   REGION');
  for (const b of s.boxes) {
    lines.push(
      [
        (short(b.id) + (b.self ? '*' : '')).padEnd(16),
        b.status.padEnd(15),
        (b.reachable ? 'yes' : 'NO').padEnd(10),
        formatBytes(b.capacity).padEnd(11),
        (b.used === undefined ? '-' : formatBytes(b.used)).padEnd(11),
        ago(b.lastSeen, s.time).padEnd(11),
        b.region ?? '',
      ].join(' '),
    );
  }
  lines.push('(* this Box)', '');
  if (s.snapshots.length === 0) lines.push('no snapshots yet');
  else {
    lines.push('SNAPSHOT      TIME (UTC)           SIZE       CHUNKS  AT TARGET  BELOW TARGET  BELOW MIN  LOST  PROTECTED');
    for (const x of s.snapshots) {
      const p = x.protection;
      lines.push(
        [
          x.root.slice(-12).padEnd(13),
          time(x.time).padEnd(20),
          formatBytes(x.size).padEnd(10),
          String(x.chunks).padStart(6),
          String(p.atTarget).padStart(10),
          String(p.belowTarget).padStart(13),
          String(p.belowMinimum).padStart(10),
          String(p.lost).padStart(5),
          p.protected ? '  yes' : p.unknown > 0 ? `  NO (${p.unknown} unknown)` : '  NO',
        ].join(' '),
      );
    }
  }
  lines.push('');
  if (s.open.length === 0) lines.push('no open conditions');
  else {
    lines.push(`open conditions (${s.open.length}):`);
    for (const e of s.open) lines.push(`  ${eventLine(e)}`);
  }
  return lines.join('\n');
}

export function register(program: Command): void {
  program
    .command('init')
    .description('found a new reserve: this Box gets new keys and a new reserve secret, and is its first member')
    .requiredOption('--data <dir>', "the new Box's data dir (new or empty)")
    .option('--listen <multiaddr>', 'where the Box listens (default /ip4/0.0.0.0/tcp/0: every interface, a port chosen once and kept)')
    .option('--capacity <size>', 'bytes offered to the reserve, e.g. 500G, 2T (default: the free space of the data dir)')
    .option('--region <name>', 'where the Box stands (copies are spread over regions)')
    .option('--rf <n>', 'copies of every chunk the reserve keeps', '3')
    .option('--min-rf <n>', 'copies below which a snapshot counts as unprotected (default min(2, rf))')
    .option('--repair-grace <duration>', 'how long a Box may be unreachable before it is declared dead and its data re-replicated, e.g. 30s, 1h (default 1h)')
    .option('--json', 'print the result as JSON')
    .action(
      action(async (opts: NewBoxOpts & { rf: string; minRf?: string; repairGrace?: string }) => {
        const rf = intOf(opts.rf, '--rf', 1, 32);
        const minRf = opts.minRf === undefined ? undefined : intOf(opts.minRf, '--min-rf', 1, rf);
        const { initReserve } = await runtime();
        const r = await initReserve(opts.data, {
          listen: listenOf(opts.listen),
          capacity: opts.capacity === undefined ? undefined : parseSize(opts.capacity, '--capacity'),
          region: opts.region,
          rf,
          minRf,
          repairGraceMs: opts.repairGrace === undefined ? undefined : parseDuration(opts.repairGrace, '--repair-grace'),
        });
        emit(
          opts,
          () =>
            [
              `founded reserve ${r.reserveId}`,
              `  this Box ${r.box}, data in ${r.dataDir}`,
              `  next: \`reserve daemon --data ${r.dataDir}\` to run it, \`reserve invite --data ${r.dataDir}\` to add a Box`,
            ].join('\n'),
          r,
        );
      }),
    );

  program
    .command('invite')
    .description('print a token a new Box joins with (it holds the reserve secret: treat it like a password)')
    .requiredOption('--data <dir>', "a member Box's data dir")
    .option('--json', 'print the result as JSON')
    .action(
      action(async (opts: DataOpts) => {
        const { createInvite } = await runtime();
        const r = await createInvite(opts.data);
        process.stderr.write('reserve: this token holds the reserve secret: anyone who has it can join your reserve. Give it only to the Box you are adding.\n');
        emit(opts, () => [r.token, '', `join with: reserve join <token> --data <new data dir>   (bootstrap: ${r.bootstrap.join(', ')})`].join('\n'), r);
      }),
    );

  program
    .command('join')
    .description('join a reserve with an invite token: a new Box gets its keys, is admitted by a member and syncs the shared state')
    .argument('<token>', 'the token `reserve invite` printed on a member')
    .requiredOption('--data <dir>', "the new Box's data dir (new or empty)")
    .option('--listen <multiaddr>', 'where the Box listens (default /ip4/0.0.0.0/tcp/0: every interface, a port chosen once and kept)')
    .option('--capacity <size>', 'bytes offered to the reserve, e.g. 500G, 2T (default: the free space of the data dir)')
    .option('--region <name>', 'where the Box stands')
    .option('--json', 'print the result as JSON')
    .action(
      action(async (token: string, opts: NewBoxOpts) => {
        const { joinReserve } = await runtime();
        const r = await joinReserve(opts.data, token, {
          listen: listenOf(opts.listen),
          capacity: opts.capacity === undefined ? undefined : parseSize(opts.capacity, '--capacity'),
          region: opts.region,
        });
        emit(opts, () => [`joined reserve ${r.reserveId} as Box ${r.box} (${r.members} members)`, `  next: \`reserve daemon --data ${resolvePath(opts.data)}\` to run it`].join('\n'), r);
      }),
    );

  program
    .command('daemon')
    .description('run this Box (network, keeper, integrity monitor, events) and serve its API on 127.0.0.1 until SIGINT/SIGTERM')
    .requiredOption('--data <dir>', "the Box's data dir")
    .option('--listen <multiaddr>', 'listen here instead of the address in reserve.json (and keep it)')
    .option('--http-port <n>', 'port of the local API (default: any free port; see <data>/daemon.json)')
    .option('--json', 'print one JSON object per line (ready, notices, events, stopped)')
    .option('--verbose', 'also print network diagnostics (failed dials, refused peers, background errors)')
    .action(
      action(async (opts: DataOpts & { listen?: string; httpPort?: string; verbose?: boolean }) => {
        const dataDir = resolvePath(opts.data);
        const port = opts.httpPort === undefined ? 0 : intOf(opts.httpPort, '--http-port', 0, 65535);
        const { createBox, BoxDaemonApi, writeFileAtomic } = await runtime();
        const { serveDaemon } = await import('../daemon/http.ts');
        const say = (human: string, data: Record<string, unknown>) => process.stdout.write((opts.json ? JSON.stringify(data, jsonReplacer) : human) + '\n');
        const rt = await createBox({
          dataDir,
          listen: listenOf(opts.listen),
          onNotice: (n) => say(noticeLine(n), { type: 'notice', notice: n }),
          onEvent: (e) => say(`${time(e.time)} event   ${eventLine(e).slice(20)}`, { type: 'event', event: e }),
          ...(opts.verbose ? { log: (line: string) => say(`${time(Date.now())} log     ${line}`, { type: 'log', time: Date.now(), message: line }) } : {}),
        });
        const me = rt.box.state().members.get(rt.id);
        if (me?.status === 'left' || me?.status === 'decommissioned') {
          await rt.stop();
          throw new NotJoinedError(
            `this Box ${me.status === 'left' ? 'left' : 'was removed from'} reserve ${rt.reserveId} on ${time(me.statusAt.wall)} UTC and is no longer a member. To use it again, empty ${dataDir} and join with a new invite (\`reserve invite\` on a member)`,
          );
        }
        const file = join(dataDir, DAEMON_FILE);
        let server: Awaited<ReturnType<typeof serveDaemon>> | undefined;
        let left: ((why: string) => void) | undefined;
        const api = new BoxDaemonApi(rt, {
          // the Box is no longer a member: stop once the client has its answer
          onLeft: () => setTimeout(() => left?.('left the reserve'), 200),
        });
        try {
          const token = randomBytes(24).toString('base64url');
          server = await serveDaemon(api, { host: '127.0.0.1', port, token, onError: (e) => say(`daemon error: ${(e as Error)?.message ?? String(e)}`, { type: 'error', message: (e as Error)?.message ?? String(e) }) });
          const info: DaemonFile = { pid: process.pid, url: server.url, token, box: rt.id, reserveId: rt.reserveId, addresses: rt.addresses(), started: Date.now() };
          await writeFileAtomic(file, JSON.stringify(info, null, 2) + '\n', 0o600);
          say(`Box ${rt.id} of reserve ${rt.reserveId} running\n  listening on ${info.addresses.join(', ')}\n  API on ${server.url} (token in ${file})`, {
            type: 'ready',
            pid: process.pid,
            box: rt.id,
            reserveId: rt.reserveId,
            url: server.url,
            addresses: info.addresses,
          });
          // The first signal stops the Box; repeats while it stops are ignored (a signal can reach the daemon twice:
          // directly and through the launcher that re-ran it with its Node flags, bin/daemon-launch.mjs).
          const signal = await new Promise<string>((resolve) => {
            left = resolve;
            process.on('SIGINT', () => resolve('SIGINT'));
            process.on('SIGTERM', () => resolve('SIGTERM'));
          });
          say(`${signal}: stopping`, { type: 'stopping', signal });
        } finally {
          await fs.rm(file, { force: true });
          await server?.close().catch(() => undefined);
          await rt.stop();
        }
        say('stopped', { type: 'stopped' });
      }),
    );

  program
    .command('status')
    .description("the reserve as this Box sees it: each Box (reachable, capacity, used, last seen) and each snapshot's protection")
    .requiredOption('--data <dir>', "a Box's data dir (its daemon answers when it runs)")
    .option('--json', 'print ReserveStatus as JSON')
    .action(
      action(async (opts: DataOpts) => {
        const { withBox } = await session();
        await withBox(opts.data, async ({ api }) => {
          const s = await api.status();
          emit(opts, () => statusText(s), s);
        });
      }),
    );

  program
    .command('events')
    .description("the reserve's events (warnings, failures, resolutions, and recent normal ones), oldest first")
    .requiredOption('--data <dir>', "a Box's data dir")
    .option('--follow', 'keep printing new events until interrupted')
    .option('--severity <level>', 'this severity and worse: normal, warning or failure')
    .option('--json', 'print JSON (one event per line with --follow)')
    .action(
      action(async (opts: DataOpts & { follow?: boolean; severity?: string }) => {
        if (opts.severity !== undefined && !SEVERITIES.includes(opts.severity)) throw new InvalidInputError(`--severity must be one of ${SEVERITIES.join(', ')}`);
        const query = opts.severity === undefined ? {} : { minSeverity: opts.severity as Severity };
        const { withBox } = await session();
        await withBox(opts.data, async ({ api }) => {
          if (!opts.follow) {
            const list = await api.events(query);
            emit(opts, () => (list.length === 0 ? 'no events' : list.map(eventLine).join('\n')), list);
            return;
          }
          const print = (e: EventEnvelope) => process.stdout.write((opts.json ? JSON.stringify(e, jsonReplacer) : eventLine(e)) + '\n');
          const past = await api.events(query);
          for (const e of past) print(e);
          const after = past.length > 0 ? past[past.length - 1].id : undefined;
          await new Promise<void>((resolve) => {
            const stop = api.follow(after === undefined ? query : { ...query, after }, (events) => events.forEach(print));
            const end = () => {
              stop();
              resolve();
            };
            process.once('SIGINT', end);
            process.once('SIGTERM', end);
          });
        });
        return EXIT.ok;
      }),
    );

  program
    .command('leave')
    .description('this Box leaves the reserve for good: the Boxes that keep its blocks after it copy them first, then it leaves (a daemon on it stops)')
    .requiredOption('--data <dir>', "the leaving Box's data dir (its daemon does the work when it runs)")
    .option('--force', 'leave even when fewer Boxes would remain than the minimum number of copies')
    .option('--json', 'print the result as JSON')
    .action(
      action(async (opts: DataOpts & { force?: boolean }) => {
        const { withBox } = await session();
        return withBox(opts.data, async ({ api, mode }) => {
          const bar = progressBar(opts, 'copies made elsewhere', 'items');
          let done = 0;
          let r: LeaveReport;
          try {
            r = await api.leave(opts.force ? { force: true } : {}, (p) => {
              if (p.total !== undefined) bar.total?.(p.total);
              bar.advance(Math.max(0, p.done - done));
              done = p.done;
            });
          } finally {
            bar.stop();
          }
          emit(opts, () => leaveText(r, mode, resolvePath(opts.data)), r);
          return r.confirmedBy.length === 0 ? EXIT.failed : EXIT.ok;
        });
      }),
    );

  program
    .command('remove')
    .description('decommission another Box for good (lost, stolen, sold): the reserve secret rotates past it and its copies are re-made from the others at once')
    .argument('<box>', 'the Box id, or a unique start or end of it (as `reserve status` shows it)')
    .requiredOption('--data <dir>', "a member Box's data dir (its daemon does the work when it runs)")
    .option('--reason <text>', 'why, for the event log')
    .option('--json', 'print the result as JSON')
    .action(
      action(async (box: string, opts: DataOpts & { reason?: string }) => {
        const { withBox } = await session();
        return withBox(opts.data, async ({ api }) => {
          const r = await api.remove({ box, ...(opts.reason !== undefined ? { reason: opts.reason } : {}) });
          emit(opts, () => removeText(r), r);
          return EXIT.ok;
        });
      }),
    );
}

const plural = (n: number, one: string, many = `${one}es`) => `${n} ${n === 1 ? one : many}`;

function leaveText(r: LeaveReport, mode: 'daemon' | 'local', dataDir: string): string {
  const members = r.confirmedBy.length + r.unconfirmed.length;
  const lines = [
    `Box ${r.box} left the reserve${mode === 'daemon' ? ' (its daemon stops now)' : ''}`,
    `  handed over  ${plural(r.held, 'block', 'blocks')}: the Boxes that keep them now made the ${plural(r.copies, 'copy', 'copies')} they lacked, in ${r.seconds.toFixed(1)} s`,
    `  remaining    ${plural(r.remaining, 'Box')} in the reserve`,
    `  confirmed    by ${r.confirmedBy.length} of ${members} members${r.unconfirmed.length ? ` (${r.unconfirmed.map(short).join(', ')} will hear it from them)` : ''}`,
    `  its blocks are still in ${dataDir}: delete the data dir to free the space`,
  ];
  if (r.confirmedBy.length === 0) {
    lines.push(
      'warning: no member confirmed the departure yet. Run `reserve daemon` on this Box for a minute so that one hears of it; otherwise the others declare it dead after the repair grace period (nothing is lost either way).',
    );
  }
  return lines.join('\n');
}

function removeText(r: RemoveReport): string {
  const lines = [
    `Box ${r.box} (${r.was}) is decommissioned`,
    `  the reserve secret rotated to generation ${r.generation}: that Box can never connect again`,
    `  its copies are made again from the other Boxes now, without waiting for the repair grace period`,
    ...(r.confirmedBy.length + r.unconfirmed.length > 0 ? [`  confirmed by ${r.confirmedBy.length} of ${r.confirmedBy.length + r.unconfirmed.length} other members`] : []),
  ];
  if (r.active < r.minimum) lines.push(`warning: ${plural(r.active, 'Box')} remain${r.active === 1 ? 's' : ''}, fewer than the minimum of ${r.minimum} copies: add a Box (\`reserve invite\`) so snapshots can be protected again`);
  return lines.join('\n');
}
