// What the browser scripts share: Debian's chromium started headless through
// playwright-core, and the one-JSON-line-per-step output that
// ../test_inspector_browser.py reads.

import { chromium } from 'playwright-core';

export function step(name, extra = {}) {
  console.log(JSON.stringify({ step: name, ...extra }));
}

export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/// Opens the inspector at `base` on its login form. Returns { page, errors }
/// (errors: uncaught exceptions of the page, collected).
export async function openInspector(browser, base) {
  const page = await browser.newPage({ viewport: { width: 1360, height: 900 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e.stack || e)));
  await page.goto(base + '/');
  await page.waitForSelector('form#login');
  return { page, errors };
}

/// Submits the login form.
export async function submitLogin(page, user, password) {
  await page.fill('input[name=user]', user);
  await page.fill('input[name=password]', password);
  await page.click('button[type=submit]');
}
