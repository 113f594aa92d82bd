// Drives the inspector's topology page in Debian's chromium (headless,
// through playwright-core) against the destination broker of a federation
// route; run by ../test_inspector_browser.py. Waits (no timing asserts) until
// the page shows the remote broker as a node and the link as an edge from
// it with the link's state and message count. Prints one JSON line per
// step; exits non-zero on the first failure. Environment: INSPECTOR_URL,
// REMOTE_NODE, LINK_NAME, LINK_STATE, MESSAGES, EDGE_TO (the edge points to
// REMOTE_NODE instead of from it), SHOT_DIR.

import { launch, openInspector, step, submitLogin } from './browser.mjs';

const base = process.env.INSPECTOR_URL;
const remote = process.env.REMOTE_NODE;
const link = process.env.LINK_NAME;
const wantState = process.env.LINK_STATE || 'Operational';
const messages = process.env.MESSAGES || '';
const shotDir = process.env.SHOT_DIR;
const WAIT_MS = 15000;

const browser = await launch();
let failed = false;
try {
  const { page, errors } = await openInspector(browser, base);
  await submitLogin(page, 'guest', 'guest');
  await page.waitForSelector('nav');
  step('logged in');
  await page.click('nav a[data-route=topology]');
  await page.waitForFunction(() => document.querySelector('#graph canvas') !== null,
    null, { timeout: WAIT_MS });
  step('topology drawn');
  // The graph's model, as drawn (data-nodes, data-edges of #graph).
  await page.waitForFunction((r) => (document.querySelector('#graph')?.dataset.nodes || '')
    .split('\n').includes(r), remote, { timeout: WAIT_MS, polling: 100 });
  step('remote broker node');
  // Pulled routes: an edge from the remote broker; exports (EDGE_TO): to it.
  const towards = process.env.EDGE_TO === remote;
  await page.waitForFunction(([l, r, s, to]) => JSON.parse(document.querySelector('#graph')?.dataset.edges || '[]')
    .some((e) => e.link === l && (to ? e.to : e.from) === r && e.state === s), [link, remote, wantState, towards],
  { timeout: WAIT_MS, polling: 100 });
  step('link edge', { state: wantState });
  if (messages) {
    await page.waitForFunction(([l, n]) => [...document.querySelectorAll('table.topology-links tbody tr')]
      .some((tr) => tr.dataset.link === l && tr.cells[5].textContent === n), [link, messages],
    { timeout: WAIT_MS, polling: 100 });
    step('link messages', { messages });
  }
  const note = await page.textContent('p.note');
  if (/not built yet/.test(note)) throw new Error('stale note: ' + note);
  if (shotDir) await page.screenshot({ path: `${shotDir}/inspector-topology.png` });
  if (errors.length) throw new Error('page errors: ' + errors.join('; '));
  step('done');
} catch (e) {
  failed = true;
  console.log(JSON.stringify({ error: String(e && e.stack || e) }));
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
