/**
 * Headless Chromium for the admin page's test and screenshot: Debian's `chromium` (installed by
 * scripts/ensure-chromium.sh, which `npm test` runs first) driven by playwright-core. Every launch gets a new,
 * empty profile (playwright's own temporary user-data-dir, removed on close) and no network beyond what the page
 * asks for.
 */
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import { ReserveError } from '../../core/errors.ts';

export const CHROMIUM_PATH = '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Chromium is not installed where the tests expect it. */
export class ChromiumMissingError extends ReserveError {
  static override readonly name = 'ChromiumMissingError';
}

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new ChromiumMissingError(`${CHROMIUM_PATH} is missing: run "sh scripts/ensure-chromium.sh" (npm test runs it first; it installs Debian's chromium package)`);
  }
  return chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS, timeout: 30_000 });
}
