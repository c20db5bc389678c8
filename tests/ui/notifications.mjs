// The Notifications page in Debian's headless Chromium (playwright-core): an admin adds a webhook
// channel, sends a test, and sees the delivery in the log; adds a plug-in channel and tests it; edits the
// webhook; a viewer sees the channels but no controls.
// Called by tests/tests/ui_browser.rs with DILUX_URL, DILUX_ROOT, HOOK_URL, DISCORD_URL and SHOTS.
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

async function signIn(role) {
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  page.on('pageerror', (e) => console.log(`page error: ${e}`));
  await page.goto(env.DILUX_URL + '/');
  await page.fill('#signin-email', `${role}@example.com`);
  await page.selectOption('#signin-role', role);
  await page.click('#signin-submit');
  await page.waitForSelector('nav.sidebar');
  await page.click('nav.sidebar >> text=Notifications');
  await page.waitForSelector('h1:has-text("Notifications")');
  await page.waitForFunction(() => !document.querySelector('main .loading'));
  return page;
}

try {
  const page = await signIn('admin');
  await page.fill('#channel-name', 'ops hook');
  await page.fill('#channel-url', env.HOOK_URL);
  await page.fill('#channel-secret', 'a-signing-secret-for-the-ui');
  await page.check('#new-channel input[value="backup_failed"]');
  await page.click('#create-channel');
  await page.waitForSelector('#channels td:has-text("ops hook")');
  const row = await page.textContent('#channels tbody tr');
  if (!row.includes('(signed)') || !row.includes('backup failed')) fail(`the channel row says: ${row}`);
  if (row.includes('a-signing-secret')) fail('the secret is shown');
  await page.screenshot({ path: `${env.SHOTS}/notifications-channel.png`, fullPage: true });
  await page.click('#channels .test-channel');
  await page.waitForSelector('p.ok:has-text("Test delivered")');
  await page.waitForSelector('#deliveries td:has-text("ops hook")');
  const log = await page.textContent('#deliveries tbody');
  if (!log.includes('delivered') || !log.includes('200')) fail(`the delivery log says: ${log}`);
  await page.screenshot({ path: `${env.SHOTS}/notifications-log.png`, fullPage: true });
  // A notifier plug-in: the form says which are installed; the settings are shown by name only.
  await page.selectOption('#channel-kind', 'plugin');
  await page.waitForSelector('#installed-plugins:has-text("discord, misbehaving")');
  await page.fill('#channel-name', 'ops discord');
  await page.fill('#channel-plugin', 'discord');
  await page.fill('#channel-settings', `webhook_url=${env.DISCORD_URL}\nusername=Backups`);
  await page.click('#create-channel');
  await page.waitForSelector('#channels td:has-text("plug-in discord")');
  if ((await page.textContent('#channels')).includes(env.DISCORD_URL)) fail('a plug-in setting is shown');
  await page.click('#channels tr:has-text("ops discord") .test-channel');
  await page.waitForSelector('p.ok:has-text("Test delivered to ops discord")');
  // Editing keeps what the form leaves empty: the webhook stays signed, its other filters stay.
  await page.click('#channels tr:has-text("ops hook") .edit-channel');
  await page.waitForSelector('#new-channel h2:has-text("Edit the channel")');
  if (await page.inputValue('#channel-name') !== 'ops hook') fail('the form is not filled with the channel');
  await page.fill('#channel-name', 'ops hook renamed');
  await page.check('#new-channel input[value="restore_failed"]');
  await page.click('#create-channel');
  await page.waitForSelector('#channels td:has-text("ops hook renamed")');
  const edited = await page.textContent('#channels tr:has-text("ops hook renamed")');
  if (!edited.includes('(signed)') || !edited.includes('backup failed, restore failed')) fail(`edited: ${edited}`);
  await page.waitForSelector('#new-channel h2:has-text("Add a channel")');
  await page.selectOption('#channel-kind', 'webhook');
  // A bad URL: the API's sentence, naming the field, and nothing added.
  await page.fill('#channel-name', 'bad');
  await page.fill('#channel-url', 'http://hooks.example.com/plain-http');
  await page.click('#create-channel');
  await page.waitForSelector('p.error:has-text("url")');
  const rows = await page.$$eval('#channels tbody tr', (r) => r.length);
  if (rows !== 2) fail(`${rows} channels after a refused one`);

  const viewer = await signIn('viewer');
  await viewer.waitForSelector('#channels td:has-text("ops hook")');
  if (await viewer.$('#new-channel, #channels .test-channel')) fail('a viewer is offered controls');
  await viewer.screenshot({ path: `${env.SHOTS}/viewer-notifications.png`, fullPage: true });
  console.log('notifications ok');
} finally {
  await browser.close();
}
