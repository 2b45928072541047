import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, chromium, type Page } from 'playwright-core';

const CHROMIUM = '/usr/bin/chromium';

export interface Browser {
  page: Page;
  /** Page errors and console errors (CSP violations among them), except the 401 of the login page. */
  problems: string[];
}

/**
 * Runs fn with a page of Debian's headless chromium in a fresh profile, removed afterwards. Answers a reason
 * instead when chromium cannot start (the caller skips, or fails when ACR_MIRROR_REQUIRE_CLIENTS=1).
 */
export async function withChromium(options: { timezoneId?: string }, fn: (browser: Browser) => Promise<void>): Promise<string | null> {
  const profile = await mkdtemp(join(tmpdir(), 'acr-chromium-'));
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1280, height: 900 },
      ...options,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
  } catch (err) {
    await rm(profile, { recursive: true, force: true });
    const reason = `chromium cannot start (${CHROMIUM}; .ci/run installs it): ${(err as Error).message.split('\n')[0]}`;
    if (process.env.ACR_MIRROR_REQUIRE_CLIENTS === '1') throw new Error(reason);
    return reason;
  }
  try {
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('pageerror', (err) => problems.push(err.message));
    page.on('console', (msg) => void (msg.type() === 'error' && !msg.text().includes('401') && problems.push(msg.text())));
    await fn({ page, problems });
    return null;
  } finally {
    await context.close();
    await rm(profile, { recursive: true, force: true });
  }
}
