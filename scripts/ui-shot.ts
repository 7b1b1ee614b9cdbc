/**
 * `npm run ui:shot`: serve a realistic reserve (adapters/daemon/demo-reserve.ts: four Boxes, one unreachable for
 * hours, snapshots at every protection level, a week of events) through the real daemon HTTP server, open the
 * admin page in headless Chromium at 1280x800, let a few live events arrive over the stream, and write
 * ui-shot.png (and ui-shot-narrow.png, a phone-sized view) in the repository root.
 *
 *   npm run ui:shot [-- --out shot.png] [-- --full]   (--full: the whole page, not only the first 800 px)
 */
import { resolve } from 'node:path';
import { launchChromium } from '../adapters/daemon/browser.ts';
import { demoReserve } from '../adapters/daemon/demo-reserve.ts';
import { serveDaemon } from '../adapters/daemon/http.ts';
import { MemoryDaemon } from '../adapters/daemon/memory-daemon.ts';

const args = process.argv.slice(2);
const outIndex = args.indexOf('--out');
const out = resolve(outIndex >= 0 && args[outIndex + 1] ? args[outIndex + 1] : 'ui-shot.png');
const narrowOut = out.replace(/(\.png)?$/, '-narrow.png');
const full = args.includes('--full');

const now = Date.now();
const demo = demoReserve(now);
const daemon = new MemoryDaemon({ status: demo.status, events: demo.events });
const token = 'ui-shot-token-0123456789';
const server = await serveDaemon(daemon, { token });
const browser = await launchChromium();
const t0 = performance.now();
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 }, deviceScaleFactor: 1 });
  await page.goto(`${server.url}/?token=${token}`);
  await page.waitForSelector('body[data-ready="true"]');
  await page.waitForSelector('#conn[data-state="live"]');
  // A few events arriving live, as the owner would see them appear.
  const { boxes, maker } = demo;
  daemon.publish([
    maker.make(boxes.office, Date.now() - 4_000, {
      kind: 'keeper-health',
      severity: 'warning',
      payload: { metric: 'disk-io', keeper: boxes.office, device: 'sdb', readBytesPerSec: 14.1e6, writeBytesPerSec: 3.3e6, busyFraction: 0.97, threshold: 0.95 },
    }),
  ]);
  await new Promise((r) => setTimeout(r, 300));
  daemon.publish([
    maker.make(boxes.office, Date.now() - 1_000, {
      kind: 'limitation-imminent',
      severity: 'warning',
      payload: { limitation: 'snapshot-size', subject: '/srv/photos', value: 621.3 * 1024 ** 3, limit: 640 * 1024 ** 3, eta: Date.now() + 6 * 86_400_000, method: 'theil-sen', slope: 3.6e-5, windowMs: 7 * 86_400_000 },
    }),
  ]);
  await page.locator('#feed li').nth(demo.events.length + 1).waitFor();
  await new Promise((r) => setTimeout(r, 700)); // the status refresh after warnings
  await page.screenshot({ path: out, fullPage: full });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: narrowOut, fullPage: false });
  console.log(`wrote ${out} and ${narrowOut} (${Math.round(performance.now() - t0)} ms)`);
} finally {
  await browser.close();
  await server.close();
}
