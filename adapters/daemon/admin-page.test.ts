/**
 * The admin page in headless Chromium (Debian's chromium through playwright-core; `npm test` installs it first with
 * scripts/ensure-chromium.sh), served by the real daemon HTTP server over an in-memory DaemonApi holding a realistic
 * reserve (demo-reserve.ts). It must render the Boxes, the snapshots' protection and the open conditions, show new
 * events live, filter them by severity, escape what the daemon sends, fit a phone screen, and say clearly when its
 * token is wrong or missing. No console error (a CSP violation would be one) is tolerated.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium } from './browser.ts';
import { demoCid, demoReserve, type DemoReserve } from './demo-reserve.ts';
import { serveDaemon, type DaemonServer } from './http.ts';
import { MemoryDaemon } from './memory-daemon.ts';

// What the functions run inside the page use (the project compiles without the DOM library).
declare const document: { documentElement: { scrollWidth: number } };
declare const window: { __pwned?: number };
declare function getComputedStyle(element: unknown): { backgroundColor: string };
interface DomElement {
  getBoundingClientRect(): { width: number };
}

const TOKEN = 'admin-page-test-token-0123';
let browser: Browser;
let server: DaemonServer;
let daemon: MemoryDaemon;
let demo: DemoReserve;
const pages: Page[] = [];
let consoleErrors: string[] = [];

beforeAll(async () => {
  demo = demoReserve(Date.now());
  daemon = new MemoryDaemon({ status: demo.status, events: demo.events });
  server = await serveDaemon(daemon, { token: TOKEN });
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

afterEach(async () => {
  for (const p of pages.splice(0)) await p.close();
  expect(consoleErrors).toEqual([]);
  consoleErrors = [];
});

async function open(path: string, viewport = { width: 1280, height: 800 }): Promise<Page> {
  const page = await browser.newPage({ viewport });
  pages.push(page);
  page.on('console', (m) => {
    if (m.type() === 'error' && !/status of 401/.test(m.text())) consoleErrors.push(m.text());
  });
  page.on('pageerror', (e) => consoleErrors.push(e.message));
  await page.goto(`${server.url}${path}`);
  return page;
}

async function openReady(viewport?: { width: number; height: number }): Promise<Page> {
  const page = await open(`/?token=${TOKEN}`, viewport);
  await page.waitForSelector('body[data-ready="true"]');
  await page.waitForSelector('#conn[data-state="live"]');
  return page;
}

describe('the admin page', () => {
  it('shows the Boxes, every snapshot\'s protection and the open conditions', async () => {
    const page = await openReady();
    const boxes = page.locator('[data-box]');
    expect(await boxes.count()).toBe(4);
    expect(await boxes.locator('.box-name').allTextContents()).toEqual(['Living room', "Parents' house", 'Office', 'Lake cabin']);
    const cabin = page.locator(`[data-box="${demo.boxes.cabin}"]`);
    expect(await cabin.locator('.reach').textContent()).toMatch(/Unreachable.*last seen 5 h ago/);
    expect(await cabin.getAttribute('class')).toContain('down');
    expect(await page.locator(`[data-box="${demo.boxes.office}"] .metrics`).textContent()).toContain('93%');
    expect(await page.locator(`[data-box="${demo.boxes.home}"]`).textContent()).toContain('this Box');
    expect(await page.locator('#stat-boxes .n').textContent()).toBe('3 / 4');

    const rows = page.locator('tr[data-snapshot]');
    expect(await rows.count()).toBe(6);
    const levelOf = async (label: string) => {
      const row = page.locator(`tr[data-snapshot="${demoCid(`snapshot:${label}`)}"]`);
      return [await row.locator('.level').textContent(), await row.locator('.protected').textContent()];
    };
    expect(await levelOf('photos-w1')).toEqual(['At target', 'protected']);
    expect(await levelOf('phone-backup')).toEqual(['Below target', 'protected']);
    expect(await levelOf('photos-w3')).toEqual(['Below minimum', 'not protected']);
    expect(await levelOf('cabin-cameras')).toEqual(['Lost', 'not protected']);
    expect(await page.locator('#stat-snapshots .n').textContent()).toBe('4 / 6');

    const open = page.locator('#open li');
    expect(await open.count()).toBe(4);
    expect(await open.first().textContent()).toMatch(/Replication too low.*1,214 chunks lost/); // failures first
    expect(await page.locator('#open').textContent()).toContain('Cannot reach Lake cabin');
    expect(await page.locator('#feed li').count()).toBe(demo.events.length);
  });

  it('shows a new event live, highlighted and severity-coloured, and refreshes the open conditions', async () => {
    const page = await openReady();
    const before = await page.locator('#feed li').count();
    const e = demo.maker.make(demo.boxes.parents, Date.now(), {
      kind: 'keeper-health',
      severity: 'failure',
      payload: { metric: 'memory', keeper: demo.boxes.parents, usedBytes: 3.9 * 2 ** 30, totalBytes: 4 * 2 ** 30, usedFraction: 0.98, threshold: 0.97 },
    });
    daemon.publish([e]);
    const first = page.locator('#feed li').first();
    await expect.poll(() => first.getAttribute('data-id'), { timeout: 5_000 }).toBe(e.id);
    expect(await page.locator('#feed li').count()).toBe(before + 1);
    expect(await first.getAttribute('class')).toMatch(/sev-failure.*fresh/);
    expect(await first.textContent()).toMatch(/Box health.*Parents' house.*Memory 98% used on Parents' house/);
    const bar = await first.locator('.sev').evaluate((n) => getComputedStyle(n).backgroundColor);
    expect(bar).toBe('rgb(192, 57, 43)');
    await expect.poll(() => page.locator('#open li').count(), { timeout: 5_000 }).toBe(5);
    expect(await page.locator('#open li').first().textContent()).toContain('Memory 98% used');
  });

  it('filters the feed by severity', async () => {
    const page = await openReady();
    const visible = async (severity: string) => {
      const items = page.locator(`#feed li[data-severity="${severity}"]`);
      let n = 0;
      for (let i = 0; i < (await items.count()); i++) if (await items.nth(i).isVisible()) n++;
      return n;
    };
    expect(await visible('normal')).toBeGreaterThan(0);
    await page.getByRole('button', { name: 'Failures' }).click();
    expect(await page.getByRole('button', { name: 'Failures' }).getAttribute('aria-pressed')).toBe('true');
    expect(await visible('normal')).toBe(0);
    expect(await visible('warning')).toBe(0);
    expect(await visible('failure')).toBeGreaterThan(0);
    await page.getByRole('button', { name: 'Warnings' }).click();
    expect(await visible('normal')).toBe(0);
    expect(await visible('warning')).toBeGreaterThan(0);
    await page.getByRole('button', { name: 'All' }).click();
    expect(await visible('normal')).toBeGreaterThan(0);
  });

  it('shows what the daemon sends as text, never as markup', async () => {
    const page = await openReady();
    const nasty = '<img src=x onerror="window.__pwned=1"><b>bold</b>';
    const e = demo.maker.make(demo.boxes.home, Date.now(), {
      kind: 'limitation-encountered',
      severity: 'warning',
      payload: { limitation: 'file-size', subject: nasty, value: 70 * 2 ** 30, limit: 64 * 2 ** 30 },
    });
    daemon.publish([e]);
    const first = page.locator('#feed li').first();
    await expect.poll(() => first.getAttribute('data-id'), { timeout: 5_000 }).toBe(e.id);
    expect(await first.locator('.text').textContent()).toContain(nasty);
    expect(await page.locator('#feed img, #feed b').count()).toBe(0);
    expect(await page.evaluate(() => window.__pwned)).toBeUndefined();
  });

  it('fits a phone screen without sideways scrolling', async () => {
    const page = await openReady({ width: 390, height: 844 });
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    expect(await page.locator('[data-box]').count()).toBe(4);
    const widths = await page.locator('[data-box]').evaluateAll((cards) => (cards as unknown as DomElement[]).map((c) => c.getBoundingClientRect().width));
    expect(Math.min(...widths)).toBeGreaterThan(300); // one Box per row
  });

  it('says clearly when the token is wrong, or missing', async () => {
    const wrong = await open('/?token=not-the-token');
    await wrong.waitForSelector('#banner:not([hidden])');
    expect(await wrong.locator('#banner').textContent()).toMatch(/Access denied: this page's token is not the daemon's.*daemon\.json/);
    expect(await wrong.locator('#conn-text').textContent()).toBe('Access denied');
    expect(await wrong.locator('[data-box]').count()).toBe(0);
    const none = await open('/');
    await none.waitForSelector('#banner:not([hidden])');
    expect(await none.locator('#banner').textContent()).toMatch(/needs the daemon's token.*\?token=/);
  });
});
