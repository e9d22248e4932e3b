// Measures the console with many nodes (not part of ctest; numbers go to docs/PERFORMANCE.md):
// the real rap-control (embedded PostgreSQL) serving web/dist, N node rows inserted with SQL
// (as if enrolled; 90 % heartbeating with load, 10 % with a role, spread over a group tree),
// Debian's chromium driven by playwright-core.
//
//   node tests/web/perf_nodes.mjs --control BIN --web WEB_DIR [--nodes 1000] [--screenshots DIR]
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';

const args = { nodes: '1000' };
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
const N = Number(args.nodes);
const webDir = path.resolve(args.web);
const playwright = createRequire(path.join(webDir, 'package.json'))('playwright-core');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rap-web-perf-'));
fs.chmodSync(tmp, 0o711);
const data = path.join(tmp, 'control');
const logFile = path.join(tmp, 'control.log');
const control = spawn(args.control, ['--listen', '127.0.0.1:0', '--data-dir', data, '--web-dir', path.join(webDir, 'dist')], {
  stdio: ['ignore', fs.openSync(logFile, 'a'), fs.openSync(logFile, 'a')],
});
let port = 0;
let ca = '';
function call(method, p, body, token) {
  return new Promise((resolve, reject) => {
    const d = body === undefined ? undefined : JSON.stringify(body);
    const t0 = performance.now();
    const req = https.request(
      { host: '127.0.0.1', port, path: p, method, ca, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(d ? { 'content-type': 'application/json' } : {}) } },
      (res) => {
        let s = '';
        res.on('data', (x) => (s += x));
        res.on('end', () => resolve({ status: res.statusCode, j: JSON.parse(s || 'null'), bytes: Buffer.byteLength(s), ms: performance.now() - t0 }));
      },
    );
    req.on('error', reject);
    if (d) req.write(d);
    req.end();
  });
}
function psql(sql) {
  execFileSync('psql', ['-q', '-v', 'ON_ERROR_STOP=1', `host=${data}/postgres port=5432 dbname=rap user=postgres`, '-c', sql], { stdio: ['ignore', 'ignore', 'inherit'] });
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

try {
  let out = '';
  for (let i = 0; i < 600 && !/listening on 127\.0\.0\.1:(\d+)/.test(out); i++) {
    await sleep(100);
    out = fs.readFileSync(logFile, 'utf8');
  }
  port = Number(/listening on 127\.0\.0\.1:(\d+)/.exec(out)[1]);
  ca = fs.readFileSync(path.join(data, 'tls', 'server.crt'), 'utf8');
  const setup = /RAP SETUP TOKEN: ([0-9a-f]{64})/.exec(out)[1];
  await call('POST', '/api/v1/setup', { setup_token: setup, email: 'owner@perf.test', password: 'owner-password-123' });
  const tok = (await call('POST', '/api/v1/login', { email: 'owner@perf.test', password: 'owner-password-123' })).j.token;
  await call('POST', '/api/v1/auth/step-up', { password: 'owner-password-123' }, tok);
  await call('POST', '/api/v1/clusters', { slug: 'big', name: 'Big cluster' }, tok);
  const groups = [];
  for (const region of ['eu', 'us', 'apac']) {
    const g = (await call('POST', '/api/v1/clusters/big/node-groups', { name: region, parent: null }, tok)).j.node_group.id;
    groups.push(g);
    for (const site of ['site-a', 'site-b', 'site-c']) groups.push((await call('POST', '/api/v1/clusters/big/node-groups', { name: `${region}-${site}`, parent: g }, tok)).j.node_group.id);
  }
  const t0 = performance.now();
  psql(`
    INSERT INTO nodes (cluster_id, name, public_key, group_id, last_heartbeat_at, last_state, agent_version)
    SELECT c.id, 'node-' || lpad(i::text, 4, '0'), lpad(to_hex(i), 64, '0'),
           (ARRAY['${groups.join("','")}']::uuid[])[1 + i % ${groups.length}],
           CASE WHEN i % 10 <> 0 THEN now() - (i % 20) * interval '1 second' END,
           jsonb_build_object('version', '0.1.0', 'load', jsonb_build_object('cpu_permille', (i * 37) % 1000, 'memory_kib', 100000 + i),
                              'workloads', '[]'::jsonb, 'partition_state', 'healthy'),
           '0.1.0'
    FROM clusters c, generate_series(1, ${N}) i WHERE c.slug = 'big';
    INSERT INTO node_role_assignments (node_id, role, assigned_by)
    SELECT n.id, (ARRAY['entry-node','relay-node','vpn-exit'])[1 + (row_number() OVER ()) % 3], u.id
    FROM nodes n, users u WHERE u.is_platform_owner AND right(n.name, 1) = '3';`);
  console.log(`inserted ${N} nodes in ${(performance.now() - t0).toFixed(0)} ms`);

  // API figures (median of 5).
  for (const p of ['/api/v1/console/nodes', '/api/v1/console/overview']) {
    const rs = [];
    for (let i = 0; i < 5; i++) rs.push(await call('GET', p, undefined, tok));
    console.log(`API ${p}: ${median(rs.map((r) => r.ms)).toFixed(0)} ms median, ${(rs[0].bytes / 1024).toFixed(0)} KiB`);
  }

  const ctx = await playwright.chromium.launchPersistentContext(fs.mkdtempSync(path.join(tmp, 'chromium-')), {
    executablePath: process.env.RAP_CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    ignoreHTTPSErrors: true,
    viewport: { width: 1360, height: 900 },
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = ctx.pages()[0] ?? (await ctx.newPage());
  page.setDefaultTimeout(60000);
  await page.goto(`https://127.0.0.1:${port}/`);
  await page.fill('input[name=email]', 'owner@perf.test');
  await page.fill('input[name=password]', 'owner-password-123');
  await page.click('button[type=submit]');
  await page.locator('h2', { hasText: 'Overview' }).waitFor();
  const timeIt = async (what, f) => {
    const s = performance.now();
    await f();
    const ms = performance.now() - s;
    console.log(`browser ${what}: ${ms.toFixed(0)} ms`);
    return ms;
  };
  await timeIt('Overview (full load + first render)', async () => {
    await page.goto(`https://127.0.0.1:${port}/overview`);
    await page.locator('[data-testid=card-nodes] .card-value', { hasText: String(N) }).waitFor();
  });
  await timeIt(`Nodes page, ${N} nodes (full load + first render)`, async () => {
    await page.goto(`https://127.0.0.1:${port}/nodes`);
    await page.getByText(`${N} of ${N}`).waitFor();
  });
  await timeIt('Nodes: sort by CPU', async () => {
    await page.click('th >> text=CPU');
    await page.locator('th[aria-sort=ascending]', { hasText: 'CPU' }).waitFor();
  });
  await timeIt('Nodes: filter "node-099"', async () => {
    await page.fill('input.filter', 'node-099');
    await page.getByText(`10 of ${N}`).waitFor();
  });
  await timeIt(`Topology, ${N} nodes (full load + first render)`, async () => {
    await page.goto(`https://127.0.0.1:${port}/topology`);
    await page.waitForFunction((n) => document.querySelectorAll('[data-testid=topology-big] circle').length >= n, N);
  });
  // Main-thread cost of one 2 s polling cycle on the Nodes page (JS heap and long tasks).
  await page.goto(`https://127.0.0.1:${port}/nodes`);
  await page.getByText(`${N} of ${N}`).waitFor();
  const lt = await page.evaluate(
    () =>
      new Promise((resolve) => {
        const tasks = [];
        new PerformanceObserver((l) => l.getEntries().forEach((e) => tasks.push(e.duration))).observe({ type: 'longtask', buffered: false });
        setTimeout(() => resolve({ tasks, heap: performance.memory?.usedJSHeapSize ?? 0 }), 10000);
      }),
  );
  console.log(`browser Nodes page over 10 s of polling: ${lt.tasks.length} long tasks (>50 ms), longest ${Math.max(0, ...lt.tasks).toFixed(0)} ms, JS heap ${(lt.heap / 1048576).toFixed(1)} MiB`);
  if (args.screenshots) {
    await page.goto(`https://127.0.0.1:${port}/topology`);
    await page.waitForFunction((n) => document.querySelectorAll('[data-testid=topology-big] circle').length >= n, N);
    await page.screenshot({ path: path.join(args.screenshots, `topology-${N}.png`) });
    await page.goto(`https://127.0.0.1:${port}/nodes`);
    await page.getByText(`${N} of ${N}`).waitFor();
    await page.screenshot({ path: path.join(args.screenshots, `nodes-${N}.png`) });
  }
  await ctx.close();
} finally {
  control.kill('SIGTERM');
  await new Promise((r) => control.once('exit', r));
  fs.rmSync(tmp, { recursive: true, force: true });
}
