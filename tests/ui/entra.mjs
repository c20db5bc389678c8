// Entra ID sign-in in the browser against a MOCK identity provider (Entra ID cannot run here): it
// serves the authorize endpoint (auto-approving as one user), the token endpoint (which checks the
// PKCE verifier against the challenge) and the signing keys. The UI must run the code flow with PKCE
// and reach the dashboard; a tampered answer (wrong state) must be refused.
// Called by tests/tests/ui_browser.rs with DILUX_URL, MOCK_PORT, TENANT, CLIENT, SHOTS, DILUX_ROOT.
import { createRequire } from 'node:module';
import { createServer } from 'node:http';
import { createHash, generateKeyPairSync, sign, randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';

const require = createRequire(`${process.env.DILUX_ROOT}/scripts/package.json`);
const { chromium } = require('playwright-core');
const { DILUX_URL: url, MOCK_PORT: port, TENANT: tenant, CLIENT: client, SHOTS: shots } = process.env;
mkdirSync(shots, { recursive: true });
const authority = `http://127.0.0.1:${port}`;
const b64url = (b) => Buffer.from(b).toString('base64url');

const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...publicKey.export({ format: 'jwk' }), kid: 'mock-1', use: 'sig', kty: 'RSA' };
const codes = new Map(); // code -> { challenge, redirect }
let tokenRequests = 0;

function jwt(claims) {
  const head = b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT', kid: 'mock-1' }));
  const body = b64url(JSON.stringify(claims));
  return `${head}.${body}.${b64url(sign('RSA-SHA256', Buffer.from(`${head}.${body}`), privateKey))}`;
}

const server = createServer((req, res) => {
  const u = new URL(req.url, authority);
  const cors = { 'access-control-allow-origin': '*', 'access-control-allow-headers': 'content-type' };
  if (req.method === 'OPTIONS') { res.writeHead(204, cors); return res.end(); }
  if (u.pathname === `/${tenant}/discovery/v2.0/keys`) {
    res.writeHead(200, { 'content-type': 'application/json' });
    return res.end(JSON.stringify({ keys: [jwk] }));
  }
  if (u.pathname === `/${tenant}/oauth2/v2.0/authorize`) {
    const p = u.searchParams;
    // The app must ask for the API's delegated scope; the token then carries it in `scp`, as Entra ID's does.
    const scoped = (p.get('scope') || '').split(' ').includes(`api://${client}/access_as_user`);
    const ok = scoped && p.get('client_id') === client && p.get('response_type') === 'code' && p.get('code_challenge_method') === 'S256' && p.get('code_challenge');
    const back = new URL(p.get('redirect_uri'));
    if (!ok) { back.searchParams.set('error', 'invalid_request'); back.searchParams.set('error_description', 'PKCE S256 and the API scope are required'); }
    else {
      const code = randomUUID();
      codes.set(code, { challenge: p.get('code_challenge'), redirect: p.get('redirect_uri') });
      back.searchParams.set('code', code);
    }
    back.searchParams.set('state', p.get('state'));
    res.writeHead(302, { location: back.toString() });
    return res.end();
  }
  if (u.pathname === `/${tenant}/oauth2/v2.0/token` && req.method === 'POST') {
    let data = '';
    req.on('data', (c) => { data += c; });
    req.on('end', () => {
      tokenRequests += 1;
      const f = new URLSearchParams(data);
      const pending = codes.get(f.get('code'));
      codes.delete(f.get('code'));
      const verified = pending && createHash('sha256').update(f.get('code_verifier') || '').digest('base64url') === pending.challenge
        && f.get('redirect_uri') === pending.redirect && f.get('grant_type') === 'authorization_code';
      res.writeHead(verified ? 200 : 400, { 'content-type': 'application/json', ...cors });
      if (!verified) return res.end(JSON.stringify({ error: 'invalid_grant', error_description: 'code or code_verifier is wrong' }));
      const now = Math.floor(Date.now() / 1000);
      res.end(JSON.stringify({ token_type: 'Bearer', expires_in: 3600, access_token: jwt({
        iss: `${authority}/${tenant}/v2.0`, aud: client, iat: now, nbf: now, exp: now + 3600,
        oid: 'oid-dana', preferred_username: 'dana@contoso.com', name: 'Dana Admin', scp: 'access_as_user' }) }));
    });
    return;
  }
  res.writeHead(404); res.end();
});
await new Promise((r) => server.listen(Number(port), '127.0.0.1', r));

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const fail = (msg) => { throw new Error(msg); };
try {
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  // A callback that was never started here (or was tampered with) is refused in words.
  await page.goto(`${url}/auth/callback?code=stolen&state=forged`);
  await page.waitForSelector('#signin-error');
  if (tokenRequests !== 0) fail('a forged callback reached the token endpoint');
  await page.screenshot({ path: `${shots}/signin-entra.png` });
  page.on('console', (m) => console.log(`console: ${m.text()}`));
  page.on('pageerror', (e) => console.log(`pageerror: ${e}`));
  await page.click('#signin-entra');
  try {
    await page.waitForSelector('h1:has-text("Dashboard")', { timeout: 15000 });
  } catch (e) {
    await page.screenshot({ path: `${shots}/entra-stuck.png` });
    console.log(`stuck at ${page.url()} (screenshot entra-stuck.png)`);
    throw e;
  }
  const who = await page.textContent('nav .who .email');
  if (who !== 'dana@contoso.com') fail(`signed in as ${who}`);
  if ((await page.textContent('nav .who .role')) !== 'admin') fail('the first user is not admin');
  if (new URL(page.url()).pathname !== '/') fail(`left on ${page.url()}`);
  await page.screenshot({ path: `${shots}/entra-dashboard.png` });
  console.log('ui-entra ok');
} finally {
  await browser.close();
  server.close();
}
