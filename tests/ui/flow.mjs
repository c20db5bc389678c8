// Drives the web UI in Debian's headless Chromium (playwright-core): sign in, add a server and a
// database, back it up, watch it complete on the Backups page, download it, restore it into a new
// database; then sign in as a viewer
// and find no controls that change anything. Saves a screenshot of every page it visits.
// Called by tests/tests/ui_browser.rs with DILUX_URL, PG_PORT, PG_PASSWORD, SHOTS, DOWNLOAD_TO, DILUX_ROOT.
import { createRequire } from 'node:module';
import { mkdirSync, readFileSync } from 'node:fs';

const require = createRequire(`${process.env.DILUX_ROOT}/scripts/package.json`);
const { chromium } = require('playwright-core');
const url = process.env.DILUX_URL;
const shots = process.env.SHOTS;
mkdirSync(shots, { recursive: true });

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const step = (name) => console.log(`ui-step ${name}`);
const fail = (msg) => { throw new Error(msg); };

async function signIn(page, role) {
  await page.goto(url + '/');
  await page.fill('#signin-email', `${role}@example.com`);
  await page.selectOption('#signin-role', role);
  await page.click('#signin-submit');
  await page.waitForSelector('nav.sidebar');
}

async function visit(page, link, heading, shot) {
  await page.click(`nav.sidebar >> text=${link}`);
  await page.waitForSelector(`h1:has-text("${heading}")`);
  await page.waitForFunction(() => !document.querySelector('main .loading'));
  await page.screenshot({ path: `${shots}/${shot}.png`, fullPage: true });
}

try {
  // ---- Admin: the whole path of a backup.
  const admin = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 900 } });
  const page = await admin.newPage();
  page.on('pageerror', (e) => console.log(`page error: ${e}`));
  await page.goto(url + '/');
  await page.waitForSelector('#signin-submit');
  await page.screenshot({ path: `${shots}/signin.png` });
  await signIn(page, 'admin');
  await page.waitForSelector('h1:has-text("Dashboard")');
  await page.waitForSelector('#dev-mode-banner:has-text("anyone who reaches this address can sign in as admin")');
  step('signed-in');

  await visit(page, 'Servers', 'Servers', 'servers-empty');
  await page.click('#add-server');
  await page.fill('#add-server-form input[name=name]', 'Local PostgreSQL');
  await page.fill('#add-server-form input[name=host]', '127.0.0.1');
  await page.fill('#add-server-form input[name=port]', process.env.PG_PORT);
  await page.fill('#add-server-form input[name=username]', 'postgres');
  await page.fill('#add-server-form input[name=password]', 'wrong-password');
  await page.click('#test-server');
  await page.waitForSelector('#add-server-form .error:has-text("AuthFailed")');
  step('failed-test-shown');
  await page.fill('#add-server-form input[name=password]', process.env.PG_PASSWORD);
  await page.click('#test-server');
  await page.waitForSelector('#add-server-form .ok:has-text("Connection OK")');
  await page.screenshot({ path: `${shots}/servers-add.png`, fullPage: true });
  await page.click('#save-server');
  await page.waitForSelector('#servers td:has-text("Local PostgreSQL")');
  step('server-added');

  // The same server again: the API's refusal is shown in words.
  await page.click('#add-server');
  await page.fill('#add-server-form input[name=name]', 'Again');
  await page.fill('#add-server-form input[name=host]', '127.0.0.1');
  await page.fill('#add-server-form input[name=port]', process.env.PG_PORT);
  await page.click('#save-server');
  await page.waitForSelector('#add-server-form .error:has-text("already registered")');
  await page.click('#add-server-form button:has-text("Cancel")');
  step('duplicate-refused');

  await page.click('#servers button.discover');
  await page.waitForSelector('#discover-dialog input[value=shop]');
  if (await page.$('#discover-dialog input[value=template0]')) fail('system databases are offered for import');
  await page.check('#discover-dialog input[value=shop]');
  await page.screenshot({ path: `${shots}/servers-discover.png`, fullPage: true });
  await page.click('#import-databases');
  await page.waitForSelector('#servers td:nth-child(5):has-text("1")');
  // A server on this machine's loopback: `auto` TLS is `prefer` there (shown as the mode in use).
  const tls = await page.textContent('#servers td.tls');
  if (tls !== 'prefer') fail(`the servers table shows TLS "${tls}" for a loopback server, not "prefer"`);
  step('database-imported');

  // Edit the server: the form comes filled in; a blank password keeps the stored one.
  await page.click('#servers button.edit');
  if (await page.inputValue('#edit-server-form input[name=host]') !== '127.0.0.1') fail('the edit form is not filled in');
  await page.fill('#edit-server-form input[name=name]', 'Local PostgreSQL (main)');
  await page.click('#edit-server-form #test-server');
  await page.waitForSelector('#edit-server-form .ok:has-text("Connection OK")');
  // The test is of what the form would save: its TLS with the stored password. `require` fails against this
  // server (it has no TLS); `disable` is weaker than the saved `prefer`, so the stored password is not sent.
  const tlsSelect = '#edit-server-form select[name=tls_mode]';
  await page.selectOption(tlsSelect, 'require');
  await page.click('#edit-server-form #test-server');
  await page.waitForSelector('#edit-server-form .error:has-text("Connection failed")');
  await page.selectOption(tlsSelect, 'disable');
  await page.click('#edit-server-form #test-server');
  await page.waitForSelector('#edit-server-form .error:has-text("weaker TLS")');
  await page.selectOption(tlsSelect, 'auto');
  await page.click('#edit-server-form #test-server');
  await page.waitForSelector('#edit-server-form .ok:has-text("Connection OK")');
  await page.click('#edit-server-form #save-server');
  await page.waitForSelector('#servers td:has-text("Local PostgreSQL (main)")');
  step('server-edited');

  // Someone else renames the server while this form is open: saving it is refused, not silently lost.
  await page.click('#servers button.edit');
  await page.waitForFunction(() => document.querySelector('#edit-server-form input[name=name]')?.value === 'Local PostgreSQL (main)');
  await page.waitForTimeout(300); // the form has fetched the version it edits
  await page.evaluate(async () => {
    const auth = { authorization: `Bearer ${JSON.parse(localStorage.getItem('dilux.token'))}`, 'content-type': 'application/json' };
    const list = await (await fetch('/api/engines', { headers: auth })).json();
    await fetch(`/api/engines/${list.engines[0].id}`, { method: 'PUT', headers: auth, body: JSON.stringify({ name: 'Local PostgreSQL (renamed elsewhere)' }) });
  });
  await page.fill('#edit-server-form input[name=name]', 'Local PostgreSQL (mine)');
  await page.click('#edit-server-form #save-server');
  await page.waitForSelector('#edit-server-form .error:has-text("changed by someone else")');
  await page.click('#edit-server-form button:has-text("Cancel")');
  await page.waitForSelector('#servers td:has-text("Local PostgreSQL (renamed elsewhere)")');
  step('stale-edit-refused');

  await visit(page, 'Databases', 'Databases', 'databases');
  await page.waitForSelector('#databases tr[data-alias=shop]');
  await page.click('#databases tr[data-alias=shop] button.backup-now');
  await page.waitForSelector('.ok:has-text("Backup queued")');
  step('backup-queued');
  await page.click('#databases tr[data-alias=shop] button.edit');
  await page.selectOption('#edit-database-form select[name=policy_id]', 'development');
  await page.click('#edit-database-form #save-database');
  await page.waitForSelector('#databases tr[data-alias=shop] td:has-text("development")');
  step('database-edited');

  await visit(page, 'Backups', 'Backups', 'backups-running');
  await page.waitForSelector('#backups tr[data-status=completed]', { timeout: 120000 });
  await page.screenshot({ path: `${shots}/backups.png`, fullPage: true });
  step('backup-completed');
  const historyBefore = await page.evaluate(() => history.length);
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#backups tr[data-status=completed] button.download')]);
  const file = await download.path();
  const bytes = readFileSync(file);
  // zstd, the default policy's compression: the frame's magic number, and the name says so.
  const zstd = [0x28, 0xb5, 0x2f, 0xfd].every((b, i) => bytes[i] === b);
  if (bytes.length < 20 || !zstd) fail(`the download is not a zstd file (${bytes.length} bytes)`);
  if (!download.suggestedFilename().endsWith('.sql.zst')) fail(`the download is named ${download.suggestedFilename()}`);
  // Kept for the test, which decompresses it whole (node has no zstd) and looks for the rows.
  await download.saveAs(process.env.DOWNLOAD_TO);
  console.log(`ui-download ${download.suggestedFilename()} ${bytes.length}`);
  // The signed link is no page of this tab: not its address, not an entry of its history.
  if (page.url().includes('sig=')) fail(`the download link became the page's address: ${page.url()}`);
  const historyAfter = await page.evaluate(() => history.length);
  if (historyAfter !== historyBefore) fail(`the download added ${historyAfter - historyBefore} history entries`);
  step('downloaded');

  // A second backup, then delete one of the two with the row's Delete and its confirmation.
  await visit(page, 'Databases', 'Databases', 'databases-again');
  await page.click('#databases tr[data-alias=shop] button.backup-now');
  await page.waitForSelector('.ok:has-text("Backup queued")');
  await visit(page, 'Backups', 'Backups', 'backups-second');
  await page.waitForFunction(() => document.querySelectorAll('#backups tr[data-status=completed]').length === 2, null, { timeout: 120000 });
  // The newest completed backup is the one a restore would use: it goes only with the box ticked.
  await page.click('#backups tr[data-status=completed] button.delete-one');
  await page.waitForSelector('#confirm-delete-backups');
  await page.click('#confirm-delete');
  await page.waitForSelector('.error:has-text("newest completed backup")');
  if (await page.$$eval('#backups tr[data-status=completed]', (rows) => rows.length) !== 2) fail('the newest backup went without force');
  await page.click('#backups tr[data-status=completed] button.delete-one');
  await page.waitForSelector('#confirm-delete-backups');
  await page.check('#force-delete');
  await page.screenshot({ path: `${shots}/backups-delete-confirm.png`, fullPage: true });
  await page.click('#confirm-delete');
  await page.waitForSelector('.ok:has-text("Deleted 1 backup(s)")');
  await page.waitForFunction(() => document.querySelectorAll('#backups tr[data-status=completed]').length === 1);
  step('backup-deleted');

  // Restore the remaining backup into a new database: the dialog, then the result in words, then the
  // Restores page.
  await page.click('#backups tr[data-status=completed] button.restore');
  await page.waitForSelector('#restore-dialog #restore-server option', { state: 'attached' });
  await page.fill('#restore-name', 'shop_from_ui');
  await page.screenshot({ path: `${shots}/restore-dialog.png`, fullPage: true });
  await page.click('#restore-start');
  await page.waitForSelector('#restore-dialog .ok:has-text("Restored into `shop_from_ui`")', { timeout: 120000 });
  await page.screenshot({ path: `${shots}/restore-done.png`, fullPage: true });
  await page.click('#restore-start');
  await page.waitForSelector('#restore-dialog .error:has-text("already exists")', { timeout: 120000 });
  step('restored');
  await visit(page, 'Restores', 'Restores', 'restores');
  await page.waitForSelector('#restores tr[data-status=completed] td:has-text("shop_from_ui")');
  await page.waitForSelector('#restores tr[data-status=failed] .details:has-text("already exists")');
  // Each restore is checked table by table against the backup's manifest, and says so.
  await page.waitForSelector('#restores tr[data-status=completed] td.checked:has-text("identical to the backup")');
  await visit(page, 'Backups', 'Backups', 'backups-verified');
  await page.waitForSelector('#backups tr[data-status=completed] td.verified [data-verification=passed]');

  // Replace the original (admins, PostgreSQL): the warning, the typed name, the previous copy named.
  await visit(page, 'Backups', 'Backups', 'backups-before-replace');
  await page.click('#backups tr[data-status=completed] button.restore');
  await page.check('#restore-replace');
  await page.waitForSelector('#restore-replace-warning');
  await page.fill('#restore-confirm', 'shop');
  await page.screenshot({ path: `${shots}/restore-replace.png`, fullPage: true });
  await page.click('#restore-start');
  await page.waitForSelector('#restore-dialog .ok:has-text("the previous copy is `shop_before_restore_")', { timeout: 120000 });
  step('replaced');

  await page.goto(url + '/');
  await page.waitForSelector('h1:has-text("Dashboard")');
  await page.waitForFunction(() => document.querySelector('#stat-databases')?.textContent === '1');
  await page.waitForFunction(() => !document.querySelector('main .loading'));
  await page.waitForSelector('#drills:has-text("No policy asks for restore drills")');
  await page.screenshot({ path: `${shots}/dashboard.png`, fullPage: true });
  await visit(page, 'Status', 'Status', 'status');

  // Policies: the tier editor says each schedule in words and updates the summary as you type.
  await visit(page, 'Policies', 'Policies', 'policies');
  await page.waitForSelector('#policies td.summary:has-text("12h/7d/4w/2m/1y")');
  await page.click('#add-policy');
  await page.fill('#policy-editor input[name=name]', 'Nightly');
  await page.waitForSelector('#policy-summary:has-text("7d")');
  await page.check('#policy-editor fieldset.tier:nth-of-type(3) legend input');
  await page.waitForSelector('#policy-summary:has-text("7d/4w")');
  await page.waitForSelector('#policy-editor .words:has-text("weekly on Sunday at 03:00 UTC, keep 4")');
  await page.fill('#policy-drills input[name=drill-every-days]', '7');
  await page.selectOption('#policy-compression select[name=compression-algorithm]', 'gzip');
  await page.fill('#policy-compression input[name=compression-level]', '9');
  await page.screenshot({ path: `${shots}/policies-edit.png`, fullPage: true });
  await page.click('#save-policy');
  await page.waitForSelector('#policies td:has-text("Nightly")');
  await page.waitForSelector('#policies tr:has-text("Nightly") .drills:has-text("restore drill every 7 days")');
  await page.waitForSelector('#policies tr:has-text("Nightly") .compression:has-text("compressed with gzip level 9")');
  step('policy-created');

  await visit(page, 'Storage', 'Storage', 'storage');
  await page.waitForSelector('#storage-databases td:has-text("shop")');
  await visit(page, 'Users', 'Users', 'users');
  await page.fill('#add-user input[type=email]', 'new.person@example.com');
  await page.click('#add-user button');
  await page.waitForSelector('#users td:has-text("new.person@example.com")');
  await visit(page, 'Audit', 'Audit', 'audit');
  await page.waitForSelector('#audit td:has-text("backup triggered")');
  await visit(page, 'Settings', 'Settings', 'settings');
  await page.check('#pref-dark');
  await page.waitForFunction(() => document.body.classList.contains('dark'));
  // Status: Azurite starts with blob soft delete off; an admin turns it on from the page.
  await visit(page, 'Status', 'Status', 'status');
  await page.waitForSelector('#soft-delete:has-text("off")');
  await page.waitForSelector('li.alert:has-text("blob soft delete is off")');
  await page.click('#enable-soft-delete');
  await page.waitForSelector('#soft-delete:has-text("on, 14 days")');
  if (await page.$('li.alert:has-text("blob soft delete is off")')) fail('the alert stays after soft delete went on');
  await page.click('nav.sidebar >> text=Dashboard');
  await page.waitForFunction(() => !document.querySelector('main .loading'));
  await page.screenshot({ path: `${shots}/dashboard-dark.png`, fullPage: true });
  step('admin-pages');
  await page.click('#sign-out');
  await page.waitForSelector('#signin-submit');
  step('signed-out');

  // ---- Viewer: sees everything, can change nothing.
  const viewerContext = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const viewer = await viewerContext.newPage();
  await signIn(viewer, 'viewer');
  await visit(viewer, 'Servers', 'Servers', 'viewer-servers');
  await viewer.waitForSelector('#servers td:has-text("Local PostgreSQL")');
  for (const sel of ['#add-server', '#servers button']) if (await viewer.$(sel)) fail(`viewer sees ${sel}`);
  await visit(viewer, 'Databases', 'Databases', 'viewer-databases');
  await viewer.waitForSelector('#databases tr[data-alias=shop]');
  for (const sel of ['#add-database', '#databases button']) if (await viewer.$(sel)) fail(`viewer sees ${sel}`);
  await visit(viewer, 'Backups', 'Backups', 'viewer-backups');
  await viewer.waitForSelector('#backups tr[data-status=completed]');
  if (await viewer.$('#backups input.select, #backups button.delete-one')) fail('viewer can delete backups');
  if (await viewer.$('#backups button.download')) fail('viewer can download backups');
  if (await viewer.$('#backups button.restore')) fail('viewer can restore backups');
  for (const link of ['Users', 'Audit']) if (await viewer.$(`nav.sidebar >> text=${link}`)) fail(`viewer sees ${link}`);
  await visit(viewer, 'Status', 'Status', 'viewer-status');
  await viewer.waitForSelector('#soft-delete:has-text("on, 14 days")');
  await visit(viewer, 'Policies', 'Policies', 'viewer-policies');
  if (await viewer.$('#add-policy, #policies button')) fail('viewer can edit policies');
  step('viewer-read-only');
  console.log('ui-flow ok');
} finally {
  await browser.close();
}
