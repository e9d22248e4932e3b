// Browser end-to-end test of the web console: the real rap-control (embedded PostgreSQL + Redis)
// serving web/dist, a real rap-node-agent enrolling with a join token, and Debian's chromium
// (headless) driven by playwright-core.
//
//   node tests/web/console_e2e.mjs --control BIN --agent BIN --web WEB_DIR [--screenshots DIR]
//
// Covers: sign-in with password + TOTP; the enrolling agent appears in Join Requests without a
// reload; approval with step-up (fresh TOTP code); role assignment; the node turns online; the
// heartbeat updates live; destructive actions ask for confirmation (cancel keeps the state);
// an organization admin reaches no platform page (UI 403) and no platform/topology API (403 on
// the console views, 404 on /api/v1/clusters...); no CSP violation in the browser console.
// Issue 9: a second real agent (entry) keeps a fabric session with the first (relay): the owner's
// topology map draws it as an edge coloured by route health; the organization admin sees an open
// access session (reported in a heartbeat with the relay agent's own node certificate) on the
// Sessions page, terminating it asks for confirmation (cancel keeps it), confirming revokes it
// (audited, and the revocation reaches the real agent's desired state); the Entry and egress page
// shows the entry's client ingress endpoint and the org's egress pool, no topology.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';

// ---------------- arguments ----------------
const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
for (const k of ['control', 'agent', 'web']) {
  if (!args[k]) {
    console.error(`usage: console_e2e.mjs --control BIN --agent BIN --web WEB_DIR [--screenshots DIR]`);
    process.exit(2);
  }
}
const webDir = path.resolve(args.web);
const dist = path.join(webDir, 'dist');
if (!fs.existsSync(path.join(dist, 'index.html'))) fail(`${dist}/index.html missing: build the console first (make web)`);
const chromiumPath = process.env.RAP_CHROMIUM ?? '/usr/bin/chromium';
if (!fs.existsSync(chromiumPath)) fail(`${chromiumPath} missing: apt-get install chromium (scripts/bootstrap.sh)`);
let playwright;
try {
  playwright = createRequire(path.join(webDir, 'package.json'))('playwright-core');
} catch (e) {
  fail(`playwright-core not installed in ${webDir}/node_modules (run npm ci there): ${e.message}`);
}

const OWNER = 'owner@e2e.test';
const OWNER_PW = 'owner-password-123';
const ORGADMIN = 'admin@acme.test';
const ORGADMIN_PW = 'acme-admin-password';
const started = Date.now();
let passed = 0;
const children = [];
let tmp;

function fail(msg) {
  console.error(`FAIL: ${msg}`);
  throw Object.assign(new Error(msg), { fatal: true });
}
function log(msg) {
  console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}`);
}
function check(cond, what) {
  if (!cond) fail(what);
  passed++;
  log(`ok - ${what}`);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function eventually(what, f, ms = 20000) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    try {
      last = await f();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await sleep(200);
  }
  fail(`timed out: ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
}

// ---------------- TOTP (RFC 6238, SHA-1, 6 digits, 30 s) ----------------
function base32(s) {
  const a = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of s.replace(/=+$/, '').toUpperCase()) bits += a.indexOf(c).toString(2).padStart(5, '0');
  const out = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) out.push(parseInt(bits.slice(i, i + 8), 2));
  return Buffer.from(out);
}
function totpAt(secret, step) {
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(step));
  const h = crypto.createHmac('sha1', base32(secret)).update(msg).digest();
  const o = h[h.length - 1] & 15;
  return String((h.readUInt32BE(o) & 0x7fffffff) % 1000000).padStart(6, '0');
}
// The server accepts each time step once per user, within ±1 step: hand out distinct steps,
// waiting for the clock only when all of the window is used.
let totpSecret = null;
let lastStep = 0;
async function nextCode() {
  for (;;) {
    const now = Math.floor(Date.now() / 1000 / 30);
    const step = Math.max(lastStep + 1, now - 1);
    if (step <= now + 1) {
      lastStep = step;
      return totpAt(totpSecret, step);
    }
    await sleep(1000);
  }
}

// ---------------- processes ----------------
function start(name, bin, argv) {
  const logFile = path.join(tmp, `${name}.log`);
  const out = fs.openSync(logFile, 'a');
  const p = spawn(bin, argv, { stdio: ['ignore', out, out], env: process.env });
  children.push({ name, p, logFile });
  return { p, logFile };
}
async function stopAll() {
  for (const c of children.reverse()) {
    if (c.p.exitCode !== null || c.p.signalCode !== null) continue;
    c.p.kill('SIGTERM');
    const done = await Promise.race([new Promise((r) => c.p.once('exit', () => r(true))), sleep(15000).then(() => false)]);
    if (!done) c.p.kill('SIGKILL');
  }
}

let port = 0;
let caPem = '';
function call(method, p, body, token) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        path: p,
        method,
        ca: caPem,
        headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(data ? { 'content-type': 'application/json' } : {}) },
      },
      (res) => {
        let s = '';
        res.on('data', (d) => (s += d));
        res.on('end', () => {
          let j = null;
          try {
            j = JSON.parse(s);
          } catch {
            /* not JSON */
          }
          resolve({ status: res.statusCode, j, body: s, headers: res.headers });
        });
      },
    );
    req.on('error', reject);
    if (data) req.write(data);
    req.end();
  });
}
// A node's mTLS call with its own certificate and key (from the agent's state directory).
function nodeCall(method, p, body, cert, key) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = https.request(
      { host: '127.0.0.1', port, path: p, method, ca: caPem, cert, key, headers: data ? { 'content-type': 'application/json' } : {} },
      (res) => {
        let s = '';
        res.on('data', (d) => (s += d));
        res.on('end', () => resolve({ status: res.statusCode, body: s }));
      },
    );
    req.on('error', reject);
    if (data) req.write(data);
    req.end();
  });
}
async function must(method, p, body, token, status) {
  const r = await call(method, p, body, token);
  if (status ? r.status !== status : r.status >= 300) fail(`${method} ${p} -> ${r.status} ${r.body}`);
  return r.j;
}

// ---------------- the test ----------------
async function main() {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rap-web-e2e-'));
  fs.chmodSync(tmp, 0o711); // the embedded PostgreSQL runs as `postgres` when we are root
  const data = path.join(tmp, 'control');

  // 1. rap-control in embedded mode, serving the built console.
  const control = start('control', args.control, ['--listen', '127.0.0.1:0', '--data-dir', data, '--web-dir', dist]);
  const out = await eventually(
    'rap-control listening',
    () => {
      if (control.p.exitCode !== null) fail(`rap-control exited: ${fs.readFileSync(control.logFile, 'utf8').slice(-2000)}`);
      const s = fs.readFileSync(control.logFile, 'utf8');
      return /listening on 127\.0\.0\.1:(\d+)/.test(s) && s;
    },
    60000,
  );
  port = Number(/listening on 127\.0\.0\.1:(\d+)/.exec(out)[1]);
  const setupToken = /RAP SETUP TOKEN: ([0-9a-f]{64})/.exec(out)[1];
  caPem = fs.readFileSync(path.join(data, 'tls', 'server.crt'), 'utf8');
  const base = `https://127.0.0.1:${port}`;
  log(`rap-control up on ${base}`);

  // 2. Platform owner, cluster, an organization with its admin, a join token — over the API.
  await must('POST', '/api/v1/setup', { setup_token: setupToken, email: OWNER, password: OWNER_PW });
  const owner = (await must('POST', '/api/v1/login', { email: OWNER, password: OWNER_PW })).token;
  await must('POST', '/api/v1/auth/step-up', { password: OWNER_PW }, owner);
  await must('POST', '/api/v1/clusters', { slug: 'main', name: 'Main mesh' }, owner);
  const orgAdminId = (await must('POST', '/api/v1/users', { email: ORGADMIN, password: ORGADMIN_PW }, owner)).user.id;
  await must('POST', '/api/v1/orgs', { slug: 'acme', name: 'Acme Corp' }, owner);
  await must('POST', '/api/v1/orgs/acme/members', { email: ORGADMIN, role: 'org_admin' }, owner);
  const buildServer = (await must('POST', '/api/v1/orgs/acme/resources', { name: 'build-server', protocol: 'rdp', address: '10.1.0.5:3389' }, owner)).resource;
  await must('POST', '/api/v1/orgs/acme/egress-pools', { name: 'office', description: 'Office network' }, owner);
  const acmeId = (await must('GET', '/api/v1/orgs/acme', undefined, owner)).org.id;
  const jt = await must('POST', '/api/v1/clusters/main/join-tokens', { ttl_seconds: 600, max_uses: 3, description: 'e2e' }, owner);
  fs.writeFileSync(path.join(tmp, 'join-token'), jt.token, { mode: 0o600 });
  // The owner enables TOTP: from now on sign-in and step-up need a code.
  const en = await must('POST', '/api/v1/me/totp/enroll', {}, owner);
  totpSecret = en.secret_base32;
  await must('POST', '/api/v1/me/totp/confirm', { code: await nextCode() }, owner);
  check((await call('POST', '/api/v1/login', { email: OWNER, password: OWNER_PW })).j?.error?.code === 'totp_required', 'owner login now needs a TOTP code');

  // 3. The browser.
  const profile = fs.mkdtempSync(path.join(tmp, 'chromium-'));
  const ctx = await playwright.chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    ignoreHTTPSErrors: true, // rap-control's self-signed certificate
    viewport: { width: 1360, height: 900 },
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = ctx.pages()[0] ?? (await ctx.newPage());
  page.setDefaultTimeout(20000);
  const consoleErrors = [];
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(m.text());
  });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  const shots = args.screenshots ? path.resolve(args.screenshots) : null;
  if (shots) fs.mkdirSync(shots, { recursive: true });
  const shot = async (name) => {
    if (shots) await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: false });
  };

  try {
    // Sign in with password + TOTP.
    const resp = await page.goto(`${base}/`);
    const h = resp.headers();
    check(/script-src 'self'/.test(h['content-security-policy'] ?? '') && h['x-content-type-options'] === 'nosniff' && h['x-frame-options'] === 'DENY', 'console served with CSP, nosniff and X-Frame-Options');
    await page.fill('input[name=email]', OWNER);
    await page.fill('input[name=password]', OWNER_PW);
    await shot('login');
    await page.click('button[type=submit]');
    await page.getByText('Authenticator code (required)').waitFor();
    check(true, 'sign-in without a code is refused with totp_required');
    await page.fill('input[name=totp]', await nextCode());
    await page.click('button[type=submit]');
    await page.locator('h2', { hasText: 'Overview' }).waitFor();
    check(true, 'owner signed in with password + TOTP and sees the Overview');

    // The agent enrolls while the Join Requests page is open: its request appears live.
    await page.click('nav >> text=Join requests');
    await page.getByText('No pending join requests').waitFor();
    const agentDir = path.join(tmp, 'agent');
    fs.mkdirSync(agentDir, { mode: 0o700 });
    const agentCfg = path.join(tmp, 'agent.json');
    fs.writeFileSync(
      agentCfg,
      JSON.stringify({
        state_dir: agentDir,
        heartbeat_interval_seconds: 1,
        enroll_poll_ms: 200,
        fabric_listen: '127.0.0.1:0',
        memberships: [{ cluster: 'main', control_url: base, control_ca_file: path.join(data, 'tls', 'server.crt'), join_token_file: path.join(tmp, 'join-token') }],
      }),
    );
    start('agent', args.agent, ['run', '--config', agentCfg]);
    const host = os.hostname();
    const approve = page.locator(`[data-testid="approve-${host}"]`);
    await approve.waitFor({ timeout: 30000 });
    check(true, `the enrolling agent (${host}) appeared in Join Requests without a reload`);
    await shot('join-requests');

    // Approve: the console asks for a step-up with a fresh second factor.
    await approve.click();
    await page.locator('[data-testid=stepup-form]').waitFor();
    check(true, 'approval asks for step-up');
    await page.fill('input[name=stepup-password]', OWNER_PW);
    await page.fill('input[name=stepup-totp]', await nextCode());
    await page.click('[data-testid=stepup-form] button[type=submit]');
    await page.getByText('No pending join requests').waitFor();
    const nodes = await eventually('node created', async () => (await must('GET', '/api/v1/clusters/main/nodes', undefined, owner)).nodes.length === 1 && (await must('GET', '/api/v1/clusters/main/nodes', undefined, owner)).nodes);
    const nodeId = nodes[0].id;
    check(true, 'join request approved after step-up; the node exists');

    // Node detail: assign a role (elevated session: no second prompt within the window).
    await page.click('nav >> text=Nodes');
    await page.locator('[data-testid=nodes-table] a', { hasText: nodes[0].name }).click();
    await page.locator('h2', { hasText: nodes[0].name }).waitFor();
    await page.selectOption('select[name=role]', 'relay-node');
    await page.click('[data-testid=assign-role]');
    await page.locator('[data-testid=node-roles]', { hasText: 'relay-node' }).waitFor();
    const detail = await must('GET', `/api/v1/clusters/main/nodes/${nodeId}`, undefined, owner);
    check(detail.node?.roles?.some?.((r) => r.role === 'relay-node') ?? JSON.stringify(detail).includes('relay-node'), 'role relay-node assigned through the console');

    // The node turns healthy and its heartbeat moves without a reload.
    await page.locator('h2 .badge', { hasText: 'online' }).waitFor({ timeout: 30000 });
    check(true, 'node shows online');
    const hb1 = await page.locator('[data-testid=last-heartbeat]').innerText();
    await eventually('heartbeat timestamp changes live', async () => (await page.locator('[data-testid=last-heartbeat]').innerText()) !== hb1, 25000);
    check(true, 'last heartbeat updates live (polling)');
    await shot('node-detail');

    // Destructive actions ask for confirmation; cancelling changes nothing.
    await page.click('text=Revoke node…');
    const dlg = page.locator('[role=dialog]');
    await dlg.getByText('All its certificates are revoked').waitFor();
    await dlg.locator('button', { hasText: 'Cancel' }).click();
    await dlg.waitFor({ state: 'detached' });
    check((await must('GET', `/api/v1/clusters/main/nodes/${nodeId}`, undefined, owner)).node.status === 'active', 'revoking a node asks for confirmation; cancel keeps it active');
    await page.click('button.link.danger >> text=disable');
    await dlg.getByText('Remove role').waitFor();
    await dlg.locator('button', { hasText: 'Cancel' }).click();
    check(JSON.stringify(await must('GET', `/api/v1/clusters/main/nodes/${nodeId}`, undefined, owner)).includes('relay-node'), 'disabling a role asks for confirmation; cancel keeps it');
    await page.click('nav >> text=Join requests');
    await page.selectOption('select[aria-label=status]', '');
    const revokeTok = page.locator('button', { hasText: 'Revoke…' });
    if (await revokeTok.count()) {
      await revokeTok.first().click();
      await dlg.getByText('Agents can no longer enroll').waitFor();
      await dlg.locator('button', { hasText: 'Cancel' }).click();
      check(true, 'revoking a join token asks for confirmation');
    }
    // A new join token is shown once (copy-once panel), never again in the list.
    await page.fill('input[placeholder=description]', 'from the console');
    await page.click('button >> text=Create token (step-up)');
    const shown = (await page.locator('[data-testid=new-token] code').innerText()).trim();
    const listed = await must('GET', '/api/v1/clusters/main/join-tokens', undefined, owner);
    check(/^[0-9a-f]{64}$/.test(shown) && listed.join_tokens.some((t) => t.description === 'from the console') && !JSON.stringify(listed).includes(shown), 'join token created with a copy-once display');
    await page.click('button >> text=I have stored it — hide');
    await page.locator('[data-testid=new-token]').waitFor({ state: 'detached' });

    // More real agents: an entry (client ingress, dials the relay: a fabric session the map
    // draws) and, for the screenshots, a second relay in a small group tree.
    const grp = async (name, parent) => (await must('POST', '/api/v1/clusters/main/node-groups', { name, parent }, owner)).node_group.id;
    const eu = await grp('eu', null);
    const ber = await grp('berlin', eu);
    const fra = await grp('frankfurt', eu);
    await must('PUT', `/api/v1/clusters/main/nodes/${nodeId}/group`, { group: ber }, owner);
    const extra = [['entry-ber', 'entry-node', ber, { client_ingress_listen: '127.0.0.1:0', fabric_listen: undefined }]];
    if (shots) extra.push(['relay-fra', 'relay-node', fra, {}]);
    for (const [name, role, group, cfgExtra] of extra) {
      const dir = path.join(tmp, `agent-${name}`);
      fs.mkdirSync(dir, { mode: 0o700 });
      const cfg = path.join(tmp, `agent-${name}.json`);
      fs.writeFileSync(cfg, JSON.stringify({ ...JSON.parse(fs.readFileSync(agentCfg, 'utf8')), state_dir: dir, ...cfgExtra }));
      start(`agent-${name}`, args.agent, ['run', '--config', cfg]);
      const req = await eventually(`join request of ${name}`, async () =>
        (await must('GET', '/api/v1/clusters/main/join-requests?status=pending', undefined, owner)).join_requests[0],
      );
      const ap = await must('POST', `/api/v1/clusters/main/join-requests/${req.id}/approve`, { name }, owner);
      await must('PUT', `/api/v1/clusters/main/nodes/${ap.node.id}/roles`, { roles: [{ role }] }, owner);
      await must('PUT', `/api/v1/clusters/main/nodes/${ap.node.id}/group`, { group }, owner);
    }
    const expectOnline = 1 + extra.length;

    // Platform pages render with the real data.
    await page.click('nav >> text=Overview');
    await page.locator('[data-testid=card-online] .card-value', { hasText: String(expectOnline) }).waitFor({ timeout: 30000 });
    check(true, 'overview counts the online node');
    await sleep(shots ? 9000 : 2500); // a few samples for the charts
    await shot('overview');
    await page.click('nav >> text=Topology');
    await page.locator('[data-testid=topology-main] circle').first().waitFor();
    check(true, 'topology map draws the cluster with its node');
    const edge = page.locator('[data-testid=fabric-sessions-main] path.session');
    await edge.first().waitFor({ timeout: 45000 });
    const health = await edge.first().getAttribute('data-health');
    const fabric = await must('GET', '/api/v1/clusters/main/fabric', undefined, owner);
    check(
      fabric.sessions.some((s) => s.a === nodeId || s.b === nodeId) && ['good', 'degraded', 'bad', 'unknown'].includes(health) && (await edge.first().getAttribute('class')).includes(`s-${health}`),
      `the owner's topology map draws the live fabric session relay <-> entry as an edge coloured by route health (${health})`,
    );
    await shot('topology');
    await page.click('nav >> text=Role assignments');
    await page.locator('[data-testid=roles-table]', { hasText: 'relay-node' }).waitFor();
    await page.click('nav >> text=Audit');
    await page.click('text=Verify hash chain');
    await page.locator('[data-testid=verify-result]', { hasText: 'chain intact' }).waitFor();
    check(true, 'audit page verifies the hash chain');
    await shot('audit');
    await page.click('nav >> text=Trust');
    await page.locator('h2', { hasText: 'Trust' }).waitFor();
    await page.getByText('Valid node certs').waitFor();
    await shot('trust');
    await page.click('nav >> text=Nodes');
    await page.locator('[data-testid=nodes-table] tbody tr').first().waitFor();
    await shot('nodes');

    // Sign out; the organization admin signs in.
    await page.click('[data-testid=sign-out]');
    await page.locator('[data-testid=login-form]').waitFor();
    const orgRequests = [];
    page.on('request', (r) => orgRequests.push(r.url()));
    await page.fill('input[name=email]', ORGADMIN);
    await page.fill('input[name=password]', ORGADMIN_PW);
    await page.click('button[type=submit]');
    await page.locator('h2', { hasText: 'Acme Corp' }).waitFor();
    const navText = (await page.locator('nav').textContent()) ?? '';
    check(navText.includes('Org acme') && !/Topology|Overview|Join requests|Nodes|Trust/.test(navText), 'org admin gets the organization panel, no platform navigation');
    await page.click('nav >> text=Resources');
    await page.locator('[data-testid=resources-table]', { hasText: 'build-server' }).waitFor();
    await shot('org-resources');
    for (const p of ['/overview', '/topology', '/nodes', '/join-requests', '/trust', '/alerts', `/nodes/main/${nodeId}`]) {
      await page.goto(`${base}${p}`);
      await page.locator('[data-testid=forbidden]').waitFor();
    }
    check(true, 'every platform page shows 403 Forbidden to the org admin');
    await shot('org-forbidden');
    const leaked = orgRequests.filter((u) => /\/api\/v1\/(clusters|console\/(overview|nodes|trust))/.test(u));
    check(leaked.length === 0, `the org admin's browser never called a platform API (${leaked.join(', ') || 'none'})`);
    const adminTok = (await must('POST', '/api/v1/login', { email: ORGADMIN, password: ORGADMIN_PW })).token;
    for (const p of ['/api/v1/console/overview', '/api/v1/console/nodes', '/api/v1/console/nodes?cluster=main', '/api/v1/console/trust', `/api/v1/console/nodes/${nodeId}/audit`]) {
      const r = await call('GET', p, undefined, adminTok);
      if (r.status !== 403 || r.j?.error?.code !== 'forbidden') fail(`org admin GET ${p} -> ${r.status} ${r.body}`);
    }
    check(true, 'console platform/topology APIs answer 403 to the org admin');
    for (const p of ['/api/v1/clusters', '/api/v1/clusters/main/nodes', '/api/v1/clusters/main/node-groups', `/api/v1/clusters/main/nodes/${nodeId}`]) {
      const r = await call('GET', p, undefined, adminTok);
      if (r.status !== 404) fail(`org admin GET ${p} -> ${r.status} ${r.body}`);
    }
    check(true, 'cluster APIs answer 404 to the org admin (their existence is not revealed)');
    {
      const r = await call('GET', '/api/v1/clusters/main/fabric', undefined, adminTok);
      if (r.status !== 404 || r.body.includes(nodeId)) fail(`org admin GET fabric -> ${r.status} ${r.body}`);
      check(true, 'the fabric sessions of the topology map answer 404 to the org admin');
    }

    // Sessions: an open access session of acme, reported by a node over mTLS with its own
    // certificate (the relay agent's; an entry reports the same way), re-sent while we look.
    const relayState = JSON.parse(fs.readFileSync(path.join(agentDir, 'clusters', 'main', 'state.json'), 'utf8')).state;
    const relayKey = fs.readFileSync(path.join(agentDir, 'clusters', 'main', 'node.key'), 'utf8');
    const grantId = crypto.randomUUID();
    const now = Math.floor(Date.now() / 1000);
    const report = async () => {
      const ls = (await must('GET', `/api/v1/clusters/main/nodes/${nodeId}`, undefined, owner)).node.last_state ?? {};
      const hb = {
        version: ls.version ?? 'e2e',
        ...(ls.endpoints ? { endpoints: ls.endpoints } : {}),
        ...(ls.fabric ? { fabric: ls.fabric } : {}),
        access: { active: [{ grant: grantId, user: orgAdminId, org: acmeId, resource: buildServer.id, started_at: now - 125, expires_at: now + 600, bytes_up: 48213, bytes_down: 1873408 }] },
      };
      const r = await nodeCall('POST', '/api/v1/node/heartbeat', hb, relayState.cert_pem, relayKey);
      if (r.status !== 200) fail(`node heartbeat with access.active -> ${r.status} ${r.body}`);
    };
    await report();
    const reporter = setInterval(() => report().catch(() => {}), 4000);
    try {
      await page.goto(`${base}/org/acme`);
      await page.click('nav >> text=Sessions');
      const row = page.locator('[data-testid=sessions-table] tbody tr', { hasText: ORGADMIN });
      await row.waitFor({ timeout: 20000 });
      const rowText = await row.innerText();
      check(rowText.includes('build-server') && rowText.includes('1.8 MiB') && !rowText.includes(nodeId), 'the org admin sees the open session (user, resource, bytes) and no node');
      const sess = await must('GET', '/api/v1/orgs/acme/sessions', undefined, adminTok);
      check(sess.sessions.length === 1 && sess.sessions[0].grant_id === grantId && !sess.body?.includes?.(nodeId) && !JSON.stringify(sess).includes(nodeId), 'GET /orgs/acme/sessions lists the session without any node');
      await shot('org-sessions');
      await page.click(`[data-testid="terminate-${ORGADMIN}"]`);
      await dlg.getByText('Its connections are cut at once').waitFor();
      await dlg.locator('button', { hasText: 'Cancel' }).click();
      await dlg.waitFor({ state: 'detached' });
      check((await must('GET', '/api/v1/orgs/acme/sessions', undefined, adminTok)).sessions.length === 1, 'terminating a session asks for confirmation; cancel keeps it');
      await page.click(`[data-testid="terminate-${ORGADMIN}"]`);
      await dlg.locator('button', { hasText: 'Terminate' }).click();
      await page.getByText('No open sessions.').waitFor();
      const audit = await must('GET', '/api/v1/audit?org=acme', undefined, adminTok);
      check(JSON.stringify(audit).includes('access.terminated') && (await must('GET', '/api/v1/orgs/acme/sessions', undefined, adminTok)).sessions.length === 0, 'confirmed terminate: the session is gone and access.terminated is audited');
      await eventually(
        'the revocation reaches the agent through its desired state',
        () => JSON.stringify(JSON.parse(fs.readFileSync(path.join(agentDir, 'clusters', 'main', 'state.json'), 'utf8')).state.revoked_grants ?? []).includes(grantId),
        15000,
      );
      check(true, 'the real agent received the revoked grant in its desired state (long-poll)');
    } finally {
      clearInterval(reporter);
    }

    // Entry and egress points: the entry's client ingress endpoint and the egress pool only.
    await page.click('nav >> text=Entry and egress');
    await page.locator('[data-testid=egress-pools-table]', { hasText: 'Office network' }).waitFor();
    await page.locator('[data-testid=entry-points-table] code').first().waitFor({ timeout: 30000 });
    const apText = (await page.locator('main').innerText()) ?? '';
    const apApi = await call('GET', '/api/v1/orgs/acme/access-points', undefined, adminTok);
    check(/127\.0\.0\.1:\d+/.test(apText) && apApi.status === 200 && apApi.j.entry_points.length === 1 && !apApi.body.includes(nodeId) && !/relay|route|cluster/i.test(apApi.body), 'the org admin sees the allowed entry point (host:port) and egress pool, no topology');
    await shot('org-access');

    const st = await call('GET', '/api/v1/orgs/acme/status', undefined, adminTok);
    check(st.status === 200 && !/node|cluster|certificate|relay|route/i.test(Object.keys(st.j).join(' ')) && !st.body.includes(nodeId) && !st.body.includes(host), 'org status is tenant-safe (no node, cluster or certificate data)');

    const csp = consoleErrors.filter((e) => /Content Security Policy|Refused to/i.test(e));
    check(csp.length === 0, `no CSP violation in the browser console (${csp.join(' | ') || 'none'})`);
  } catch (e) {
    if (shots || true) await page.screenshot({ path: path.join(tmp, 'failure.png') }).catch(() => {});
    console.error(`browser console errors: ${consoleErrors.join('\n') || 'none'}`);
    console.error(`screenshot of the failure: ${path.join(tmp, 'failure.png')}`);
    throw e;
  } finally {
    await ctx.close().catch(() => {});
  }
}

let code = 0;
try {
  await main();
} catch (e) {
  code = 1;
  if (!e.fatal) console.error(e);
  for (const c of children) {
    try {
      console.error(`--- ${c.name} log (tail) ---\n${fs.readFileSync(c.logFile, 'utf8').slice(-3000)}`);
    } catch {
      /* no log */
    }
  }
} finally {
  await stopAll();
}
if (code === 0 && tmp && !process.env.RAP_KEEP_TMP) fs.rmSync(tmp, { recursive: true, force: true });
console.log(`${passed} passed, ${code === 0 ? 0 : 1} failed (${((Date.now() - started) / 1000).toFixed(1)} s)`);
process.exit(code);
