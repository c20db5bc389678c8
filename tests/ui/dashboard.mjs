// The dashboard of a busy history, in Debian's headless Chromium (playwright-core): more backups on one day
// than any page of history holds, and the figures must still be exact.
// Called by tests/tests/ui_browser.rs with DILUX_URL, DILUX_ROOT, BUSY_DAY, BUSY_COMPLETED, BUSY_FAILED,
// TODAY_TOTAL and SHOTS.
import { createRequire } from 'node:module';
import { mkdirSync } from 'node:fs';

const require = createRequire(`${process.env.DILUX_ROOT}/scripts/package.json`);
const { chromium } = require('playwright-core');
const env = process.env;
mkdirSync(env.SHOTS, { recursive: true });
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
});
const fail = (msg) => { throw new Error(msg); };
try {
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  await page.goto(env.DILUX_URL + '/');
  await page.fill('#signin-email', 'viewer@example.com');
  await page.selectOption('#signin-role', 'viewer');
  await page.click('#signin-submit');
  await page.waitForSelector('#backups-per-day .bar');
  await page.screenshot({ path: `${env.SHOTS}/dashboard-busy.png`, fullPage: true });
  const title = await page.getAttribute(`#backups-per-day .bar[data-day="${env.BUSY_DAY}"]`, 'title');
  const want = `${env.BUSY_DAY}: ${env.BUSY_COMPLETED} completed, ${env.BUSY_FAILED} failed`;
  if (title !== want) fail(`the busy day's bar says "${title}", not "${want}"`);
  const today = (await page.textContent('#stat-today')).trim();
  if (today !== env.TODAY_TOTAL) fail(`"Backups today" says ${today}, not ${env.TODAY_TOTAL}`);
  const bars = await page.$$eval('#backups-per-day .bar', (b) => b.length);
  if (bars !== 14) fail(`${bars} days in the chart, not 14`);
  console.log('dashboard ok');
} finally {
  await browser.close();
}
