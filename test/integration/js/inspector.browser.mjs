// Drives the web inspector in Debian's chromium (headless, through
// playwright-core) against a running flotillad; run by
// ../test_inspector_browser.py. Logs in, creates a queue and publishes
// through AMQP (amqplib), and checks that the page shows the queue and its
// depth within two seconds. Prints one JSON line per step; exits non-zero
// on the first failure. Environment: INSPECTOR_URL, AMQP_URL, SHOT_DIR.

import { launch, openInspector, step, submitLogin } from './browser.mjs';
import amqp from 'amqplib';

const base = process.env.INSPECTOR_URL;
const amqpUrl = process.env.AMQP_URL;
const shotDir = process.env.SHOT_DIR;
const LIMIT_MS = 2000;

/// Waits until the page shows `text` in the element of `selector`; returns
/// the milliseconds it took.
async function waitForText(page, selector, text, timeout = LIMIT_MS) {
  const t0 = Date.now();
  await page.waitForFunction(
    ([sel, want]) => [...document.querySelectorAll(sel)].some((e) => e.textContent.trim() === want),
    [selector, text], { timeout, polling: 50 });
  return Date.now() - t0;
}

const browser = await launch();
let conn;
let failed = false;
try {
  const { page, errors } = await openInspector(browser, base);
  await submitLogin(page, 'guest', 'wrong');
  await page.waitForSelector('form#login .error:has-text("wrong password")');
  step('wrong password refused');
  await submitLogin(page, 'guest', 'guest');
  await page.waitForSelector('nav');
  const cookies = await page.context().cookies();
  const session = cookies.find((c) => c.name === 'flotilla_session');
  if (!session || !session.httpOnly || session.sameSite !== 'Strict')
    throw new Error('no HttpOnly SameSite=Strict session cookie: ' + JSON.stringify(cookies));
  step('logged in');
  await page.waitForFunction(() => document.getElementById('live')?.textContent === 'live',
    null, { timeout: 5000 });
  step('websocket live');

  await page.click('nav a[data-route=queues]');
  await page.waitForSelector('h2:has-text("Queues")');
  const queue = 'browser-test-' + Date.now();
  conn = await amqp.connect(amqpUrl);
  const ch = await conn.createConfirmChannel();
  await ch.assertQueue(queue);
  const appeared = await waitForText(page, 'table.grid td a', queue);
  step('queue appeared', { ms: appeared });

  for (let i = 0; i < 7; i++) ch.sendToQueue(queue, Buffer.from('message ' + i));
  await ch.waitForConfirms();
  // The row of the queue: its "messages" column (third cell) shows 7.
  const t0 = Date.now();
  await page.waitForFunction((q) => [...document.querySelectorAll('table.grid tbody tr')].some(
    (tr) => tr.cells[0].textContent === q && tr.cells[2].textContent === '7'), queue,
  { timeout: LIMIT_MS, polling: 50 });
  step('depth changed in list', { ms: Date.now() - t0 });

  await page.click(`table.grid td a:text-is("${queue}")`);
  await page.waitForSelector('span.qname');
  await waitForText(page, '[data-card=messages]', '7', 5000);
  // Traffic for the charts: a few more batches, a consumer takes some.
  for (let round = 0; round < 4; round++) {
    for (let i = 0; i < 5 * (round + 1); i++) ch.sendToQueue(queue, Buffer.from('more'));
    await ch.waitForConfirms();
    await new Promise((r) => setTimeout(r, 1100));
  }
  const expected = String(7 + 5 + 10 + 15 + 20);
  const t1 = Date.now();
  await waitForText(page, '[data-card=messages]', expected);
  step('depth changed on queue page', { ms: Date.now() - t1, messages: expected });
  // Peek: the next 10 messages are listed and stay in the queue.
  await page.click('button.peek');
  await waitForText(page, '.peek-note', `10 of ${expected} ready, left in the queue`, 5000);
  const peeked = await page.$$eval('table.peeked tbody tr', (rows) => rows.length);
  if (peeked !== 10) throw new Error(`peek listed ${peeked} messages, expected 10`);
  await waitForText(page, '[data-card=messages]', expected, 3000);
  step('peek lists messages without taking them');
  await ch.consume(queue, (m) => ch.ack(m), { prefetch: 10 });
  const t2 = Date.now();
  await waitForText(page, '[data-card=messages]', '0', 4000);
  step('drained', { ms: Date.now() - t2 });
  await new Promise((r) => setTimeout(r, 1500));
  await page.screenshot({ path: `${shotDir}/inspector-queue.png` });

  await page.click('nav a[data-route=actors]');
  await page.fill('input.filter', queue);
  await waitForText(page, 'table.grid td', queue, 3000);
  step('actors view lists the queue');
  await page.fill('input.filter', '');

  await page.click('nav a[data-route=overview]');
  await page.waitForSelector('[data-card=queues]');
  await new Promise((r) => setTimeout(r, 1500));
  await page.screenshot({ path: `${shotDir}/inspector.png` });

  await page.click('nav a[data-route=events]');
  await waitForText(page, 'table.grid td', queue, 3000);
  step('event log shows the queue');
  await page.click('nav a[data-route=topology]');
  await page.waitForFunction(() => document.querySelector('#graph canvas') !== null,
    null, { timeout: 3000 });
  step('topology drawn');
  if (errors.length) throw new Error('page errors: ' + errors.join('; '));
  step('done');
} catch (e) {
  failed = true;
  console.log(JSON.stringify({ error: String(e && e.stack || e) }));
} finally {
  if (conn) await conn.close().catch(() => {});
  await browser.close();
}
process.exit(failed ? 1 : 0);
