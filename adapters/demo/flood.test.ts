/**
 * The multi-process integration test: the flood demo with assertions, on real processes over 127.0.0.1.
 * Four Boxes form a reserve, one backs up, the reserve protects it at RF 3; a member is killed while blocks are
 * still moving and comes back; the home Box is killed and its disk deleted; a factory-new Box joins and restores
 * while another member is killed mid-restore; the result is byte-identical and RF is back at target. A join with
 * a wrong secret is refused, quickly and clearly.
 */
import { afterAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createReserveSecret } from '../../core/state/crypto.ts';
import { decodeInvite, encodeInvite } from '../runtime/token.ts';
import { launchChromium } from '../daemon/browser.ts';
import { systemRandom } from '../system.ts';
import { runFloodDemo, type FloodDemoResult } from './flood.ts';
import type { Fleet } from './fleet.ts';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

describe('flood on real processes', () => {
  const scratch: string[] = [];
  afterAll(async () => {
    for (const d of scratch) await fs.rm(d, { recursive: true, force: true });
  });

  it('a factory-new Box restores everything byte-identical after the home Box is lost; crashes mid-transfer lose nothing; a wrong secret is refused', async () => {
    const lines: string[] = [];
    let wrongSecret: { code: number; ms: number; stderr: string } | undefined;
    let crashedDuringRestore = false;
    let page_: { boxes: number; snapshots: number; protectedText: string; feed: number } | undefined;
    const result: FloodDemoResult = await runFloodDemo({
      sizeMiB: 24,
      boxes: 4,
      repairGrace: '6s',
      repairWaitMs: 120_000,
      log: (l) => lines.push(l),
      hooks: {
        // A member dies while the author is still pushing the new blocks, then comes back.
        afterBackup: async (fleet: Fleet) => {
          await fleet.kill('box-3', 'SIGKILL');
          // Meanwhile somebody tries to join with the right reserve but a wrong secret.
          const { token } = await fleet.json<{ token: string }>(['invite', '--data', fleet.dataDir('box-2')]);
          // A token of another reserve (its own secret and id) pointed at this reserve's Boxes.
          const invite = decodeInvite(token);
          const other = createReserveSecret(systemRandom);
          const bad = encodeInvite({ ...invite, reserveId: other.reserveId, secret: other.secret });
          const dir = await fs.mkdtemp(join(tmpdir(), 'reserve-intruder-'));
          scratch.push(dir);
          const r = await fleet.cli(['join', bad, '--data', join(dir, 'box')], { allowFail: true, timeoutMs: 60_000 });
          wrongSecret = { code: r.code, ms: r.ms, stderr: r.stderr };
          await fleet.startDaemon('box-3');
        },
        // The owner opens the admin page of a surviving Box's daemon in a browser.
        atEnd: async (fleet: Fleet) => {
          const { url, token } = fleet.daemon('box-2').file;
          const browser = await launchChromium();
          try {
            const page = await browser.newPage();
            await page.goto(`${url}/?token=${encodeURIComponent(token)}`);
            await page.waitForSelector('body[data-ready="true"]', { timeout: 20_000 });
            page_ = {
              boxes: await page.locator('[data-box]').count(),
              snapshots: await page.locator('tr[data-snapshot]').count(),
              protectedText: (await page.locator('#stat-snapshots .n').textContent()) ?? '',
              feed: await page.locator('#feed li').count(),
            };
          } finally {
            await browser.close();
          }
        },
        // A member dies while the new Box is fetching from it; the others serve the rest.
        duringRestore: async (fleet: Fleet) => {
          await sleep(300);
          await fleet.kill('box-4', 'SIGKILL');
          crashedDuringRestore = true;
          await sleep(1000);
          await fleet.startDaemon('box-4');
        },
      },
    });
    const transcript = lines.join('\n');
    expect(result.differences, transcript).toEqual([]);
    expect(result.ok, transcript).toBe(true);
    expect(crashedDuringRestore).toBe(true);
    expect(result.repairedAfter, transcript).not.toBeNull();
    // Refused, with a message that says why, well before the command's deadline.
    expect(wrongSecret?.code).not.toBe(0);
    expect(wrongSecret?.stderr).toMatch(/secret/i);
    expect(wrongSecret!.ms).toBeLessThan(30_000);
    // The admin page of a real daemon shows the five Boxes ever in the reserve, the snapshot protected, the feed.
    expect(page_).toMatchObject({ boxes: 5, snapshots: 1, protectedText: '1 / 1' });
    expect(page_!.feed).toBeGreaterThan(0);
    // The owner heard about the lost Box.
    const kinds = new Set(result.events.map((e) => e.kind));
    expect(kinds.has('keeper-removed') || kinds.has('network-disruption'), transcript).toBe(true);
  }, 420_000);
});
