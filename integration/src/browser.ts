import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import { REPO } from './airflow.ts';

/**
 * Debian's Chromium (`apt-get install chromium`; .ci/run installs it) driven by playwright-core: no browser
 * download. Headless, sandbox off (CI runs as root), and none of the background traffic a fresh profile
 * makes (component updates, sync, safe-browsing lists): the tests' only requests go to loopback.
 */
export const CHROMIUM = process.env.AIRFLEET_CHROMIUM ?? '/usr/bin/chromium';

export function assertChromium(): void {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `No Chromium at ${CHROMIUM}: install Debian's (\`apt-get install chromium\`; .ci/run does), or point AIRFLEET_CHROMIUM at one.`,
    );
  }
}

export async function launchChromium(): Promise<Browser> {
  assertChromium();
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-dev-shm-usage',
    ],
  });
}

/** Where test runs save screenshots: reports/dashboard (the CI keeps reports/). */
export const SCREENSHOTS = join(REPO, 'reports', 'dashboard');

export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const path = join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}
