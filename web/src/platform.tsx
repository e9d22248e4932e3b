// Platform owner console: overview, clusters, topology, nodes, node detail, join requests, role
// assignments, workloads, audit, trust. Everything here calls platform-staff-only endpoints.
import { useMemo, useState } from 'preact/hooks';
import { ApiError, CAPABILITIES, CompactNode, JoinRequest, NodeGroup, ROLES, Role, get, post, put } from './api';
import {
  Badge,
  Card,
  Column,
  Empty,
  ErrorBox,
  Link,
  PollState,
  Sparkline,
  Table,
  age,
  attempt,
  confirmAction,
  highRisk,
  navigate,
  toast,
  usePoll,
  usePollFn,
  useSeries,
} from './ui';
import { FabricView, TopologyMap } from './topology';

const enc = encodeURIComponent;

function HealthBadge(props: { n: { health: string; status?: string } }) {
  if (props.n.status === 'revoked') return <Badge kind="revoked" />;
  return <Badge kind={props.n.health} />;
}

function rolesText(rs: Role[]) {
  return rs.map((r) => (r.org ? `${r.role}@${r.org}` : r.role)).join(', ');
}

// ---------------- Overview ----------------

interface Overview {
  server_time: string;
  totals: Record<string, number> & { avg_cpu_permille: number | null; max_heartbeat_age_seconds: number | null };
  clusters: any[];
  risky: { severity: string; kind: string; cluster: string; node?: { id: string; name: string }; message: string }[];
  risky_total: number;
  core_roles: string[];
}

export function OverviewPage() {
  const ov = usePoll<Overview>('/console/overview');
  const t = ov.data?.totals;
  // Charts: sampled client-side from the 2 s polls.
  const cpuSeries = useSeries(t && t.avg_cpu_permille !== null ? t.avg_cpu_permille / 10 : null, ov.updatedAt);
  const ageSeries = useSeries(t && t.max_heartbeat_age_seconds !== null ? Math.min(t.max_heartbeat_age_seconds, 300) : null, ov.updatedAt);
  const onlineSeries = useSeries(t ? t.online : null, ov.updatedAt);
  return (
    <div>
      <h2>Overview</h2>
      <PollState poll={ov}>
        {t ? (
          <>
            <div class="cards">
              <Card title="Clusters" value={t.clusters} testid="card-clusters" />
              <Card title="Nodes (active)" value={t.active} sub={`${t.revoked} revoked`} testid="card-nodes" />
              <Card title="Online" value={t.online} kind="ok" testid="card-online" />
              <Card title="Stale" value={t.stale} kind={t.stale ? 'warn' : ''} />
              <Card title="Offline" value={t.offline} kind={t.offline ? 'bad' : ''} />
              <Card
                title="Pending join requests"
                value={<Link href="/join-requests">{t.pending_join_requests}</Link>}
                kind={t.pending_join_requests ? 'warn' : ''}
                testid="card-pending"
              />
              <Card title="Risky states" value={ov.data!.risky_total} kind={ov.data!.risky_total ? 'bad' : 'ok'} />
            </div>
            <div class="charts">
              <Sparkline values={onlineSeries} label="Online nodes" />
              <Sparkline values={cpuSeries} label="Average CPU (online nodes)" unit="%" max={100} />
              <Sparkline values={ageSeries} label="Oldest heartbeat age" unit=" s" />
            </div>
            <h3>Clusters</h3>
            <ClusterTable clusters={ov.data!.clusters} />
            <h3>Risky states</h3>
            {ov.data!.risky.length === 0 ? (
              <Empty>Nothing risky right now.</Empty>
            ) : (
              <ul class="risky" data-testid="risky">
                {ov.data!.risky.map((r) => (
                  <li class={`sev-${r.severity}`}>
                    <Badge kind={r.severity === 'high' ? 'offline' : 'stale'}>{r.kind}</Badge> <strong>{r.cluster}</strong>
                    {r.node ? (
                      <>
                        {' '}
                        · <Link href={`/nodes/${enc(r.cluster)}/${r.node.id}`}>{r.node.name}</Link>
                      </>
                    ) : null}{' '}
                    — {r.message}
                  </li>
                ))}
                {ov.data!.risky_total > ov.data!.risky.length ? <li>… and {ov.data!.risky_total - ov.data!.risky.length} more</li> : null}
              </ul>
            )}
          </>
        ) : null}
      </PollState>
    </div>
  );
}

function ClusterTable(props: { clusters: any[] }) {
  const cols: Column<any>[] = [
    { key: 'slug', title: 'Cluster', render: (c) => <Link href={`/clusters/${enc(c.slug)}`}>{c.slug}</Link> },
    { key: 'name', title: 'Name' },
    { key: 'partition_state', title: 'Authority', render: (c) => <Badge kind={c.partition_state === 'normal' ? 'online' : 'offline'}>{`${c.partition_state} · epoch ${c.authority_epoch}`}</Badge> },
    { key: 'active', title: 'Nodes', value: (c) => c.nodes.active },
    {
      key: 'health',
      title: 'Health',
      value: (c) => c.health.online,
      render: (c) => <HealthBar h={c.health} />,
    },
    { key: 'pending', title: 'Pending joins', value: (c) => c.pending_join_requests },
    {
      key: 'gaps',
      title: 'Role coverage gaps',
      value: (c) => c.role_gaps.join(', '),
      render: (c) => (c.role_gaps.length ? c.role_gaps.map((g: string) => <Badge kind="stale">{g}</Badge>) : <Badge kind="online">covered</Badge>),
    },
    { key: 'workloads', title: 'Workloads running', value: (c) => `${c.workloads.running}/${c.workloads.desired}` },
  ];
  return <Table rows={props.clusters} columns={cols} rowKey={(c) => c.slug} empty="No clusters yet: create one on the Clusters page." testid="clusters-table" />;
}

function HealthBar(props: { h: Record<string, number> }) {
  const total = Math.max(1, props.h.online + props.h.stale + props.h.offline);
  return (
    <div class="hbar" title={`online ${props.h.online}, stale ${props.h.stale}, offline ${props.h.offline}, revoked ${props.h.revoked}`}>
      <span class="h-online" style={{ width: `${(props.h.online / total) * 100}%` }} />
      <span class="h-stale" style={{ width: `${(props.h.stale / total) * 100}%` }} />
      <span class="h-offline" style={{ width: `${(props.h.offline / total) * 100}%` }} />
      <em>
        {props.h.online}/{props.h.online + props.h.stale + props.h.offline}
      </em>
    </div>
  );
}

// ---------------- Health and alerts ----------------

export function AlertsPage() {
  const ov = usePoll<Overview>('/console/overview');
  const [sev, setSev] = useState('');
  const rows = (ov.data?.risky ?? []).filter((r) => !sev || r.severity === sev).map((r, i) => ({ ...r, key: `${i}` }));
  return (
    <div>
      <h2>Health and alerts</h2>
      <div class="filters">
        <select aria-label="severity" value={sev} onChange={(e) => setSev((e.target as HTMLSelectElement).value)}>
          <option value="">any severity</option>
          <option value="high">high</option>
          <option value="warn">warn</option>
        </select>
        {ov.data && ov.data.risky_total > ov.data.risky.length ? <span class="muted">showing {ov.data.risky.length} of {ov.data.risky_total}</span> : null}
      </div>
      <PollState poll={ov}>
        <Table
          rows={rows}
          rowKey={(r) => r.key}
          empty="Nothing risky right now: every cluster has its authority, role coverage, certificates and workloads in order."
          columns={[
            { key: 'severity', title: 'Severity', render: (r) => <Badge kind={r.severity === 'high' ? 'offline' : 'stale'}>{r.severity}</Badge> },
            { key: 'kind', title: 'Kind' },
            { key: 'cluster', title: 'Cluster', render: (r) => <Link href={`/clusters/${enc(r.cluster)}`}>{r.cluster}</Link> },
            { key: 'node', title: 'Node', value: (r) => r.node?.name ?? '', render: (r) => (r.node ? <Link href={`/nodes/${enc(r.cluster)}/${r.node.id}`}>{r.node.name}</Link> : '—') },
            { key: 'message', title: 'What' },
          ]}
        />
      </PollState>
    </div>
  );
}

// ---------------- Clusters ----------------

export function ClustersPage() {
  const ov = usePoll<Overview>('/console/overview');
  const [slug, setSlug] = useState('');
  const [name, setName] = useState('');
  return (
    <div>
      <h2>Clusters</h2>
      <PollState poll={ov}>{ov.data ? <ClusterTable clusters={ov.data.clusters} /> : null}</PollState>
      <form
        class="inline-form"
        onSubmit={async (e) => {
          e.preventDefault();
          if (await attempt('Create cluster', () => highRisk('Creating a cluster creates a new certificate authority.', () => post('/clusters', { slug, name })))) {
            toast(`Cluster ${slug} created`);
            setSlug('');
            setName('');
            ov.reload();
          }
        }}
      >
        <h3>New cluster</h3>
        <input placeholder="slug (a-z0-9-)" value={slug} onInput={(e) => setSlug((e.target as HTMLInputElement).value)} required pattern="[a-z0-9-]{2,63}" />
        <input placeholder="name" value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} required />
        <button class="primary">Create (step-up)</button>
      </form>
    </div>
  );
}

export function ClusterDetailPage(props: { slug: string }) {
  const slug = props.slug;
  const ov = usePoll<Overview>('/console/overview');
  const nodes = usePoll<{ nodes: CompactNode[] }>(`/console/nodes?cluster=${enc(slug)}`);
  const groups = usePoll<{ node_groups: NodeGroup[] }>(`/clusters/${enc(slug)}/node-groups`, 5000);
  const fabric = usePoll<FabricView>(`/clusters/${enc(slug)}/fabric`, 2000);
  const c = ov.data?.clusters.find((x) => x.slug === slug);
  const [gname, setGname] = useState('');
  const [gparent, setGparent] = useState('');
  return (
    <div>
      <h2>
        Cluster <code>{slug}</code>
      </h2>
      <ErrorBox error={nodes.error ?? groups.error} />
      {c ? (
        <div class="cards">
          <Card title="Authority" value={c.partition_state} sub={`epoch ${c.authority_epoch}`} kind={c.partition_state === 'normal' ? 'ok' : 'bad'} />
          <Card title="Active nodes" value={c.nodes.active} />
          <Card title="Online" value={c.health.online} kind="ok" />
          <Card title="Pending joins" value={c.pending_join_requests} />
          <Card title="Role gaps" value={c.role_gaps.length ? c.role_gaps.join(', ') : 'none'} kind={c.role_gaps.length ? 'warn' : 'ok'} />
          <Card title="CA expires" value={c.ca_not_after?.slice(0, 10) ?? '—'} />
        </div>
      ) : null}
      {c ? (
        <>
          <h3>Role coverage</h3>
          <table class="compact">
            <thead>
              <tr>
                <th>role</th>
                <th>nodes</th>
                <th>online</th>
              </tr>
            </thead>
            <tbody>
              {Object.keys(c.role_coverage).length === 0 ? (
                <tr>
                  <td colSpan={3}>No roles assigned yet.</td>
                </tr>
              ) : (
                Object.entries(c.role_coverage).map(([r, v]: [string, any]) => (
                  <tr>
                    <td>{r}</td>
                    <td>{v.nodes}</td>
                    <td>{v.online ? v.online : <Badge kind="offline">0</Badge>}</td>
                  </tr>
                ))
              )}
            </tbody>
          </table>
        </>
      ) : null}
      <h3>Topology</h3>
      {nodes.data && groups.data ? (
        <TopologyMap cluster={slug} nodes={nodes.data.nodes} groups={groups.data.node_groups} fabric={fabric.data} />
      ) : (
        <div class="loading">Loading…</div>
      )}
      <h3>Node groups</h3>
      {groups.data ? (
        <GroupTree groups={groups.data.node_groups} nodes={nodes.data?.nodes ?? []} />
      ) : null}
      <form
        class="inline-form"
        onSubmit={async (e) => {
          e.preventDefault();
          if (await attempt('Create group', () => post(`/clusters/${enc(slug)}/node-groups`, { name: gname, parent: gparent || null }))) {
            setGname('');
            groups.reload();
          }
        }}
      >
        <input placeholder="group name (e.g. eu-west)" value={gname} onInput={(e) => setGname((e.target as HTMLInputElement).value)} required />
        <select value={gparent} onChange={(e) => setGparent((e.target as HTMLSelectElement).value)}>
          <option value="">(top level)</option>
          {groups.data?.node_groups.map((g) => <option value={g.id}>{g.name}</option>)}
        </select>
        <button>Add group</button>
      </form>
    </div>
  );
}

function GroupTree(props: { groups: NodeGroup[]; nodes: CompactNode[]; onPick?: (id: string | null) => void; picked?: string | null }) {
  const children = (p: string | null) => props.groups.filter((g) => g.parent_id === p).sort((a, b) => a.name.localeCompare(b.name));
  const count = (id: string) => props.nodes.filter((n) => n.group_id === id).length;
  const render = (p: string | null, depth: number): any =>
    children(p).map((g) => (
      <li>
        {props.onPick ? (
          <a
            href="#"
            class={props.picked === g.id ? 'picked' : ''}
            onClick={(e) => {
              e.preventDefault();
              props.onPick!(g.id);
            }}
          >
            {g.name}
          </a>
        ) : (
          <span>{g.name}</span>
        )}{' '}
        <span class="muted">({count(g.id)})</span>
        {depth < 10 ? <ul>{render(g.id, depth + 1)}</ul> : null}
      </li>
    ));
  if (props.groups.length === 0) return <Empty>No node groups in this cluster.</Empty>;
  return <ul class="tree">{render(null, 0)}</ul>;
}

// ---------------- Nodes ----------------

export function NodesPage() {
  const nodes = usePoll<{ nodes: CompactNode[] }>('/console/nodes');
  const [cluster, setCluster] = useState('');
  const [health, setHealth] = useState('');
  const [role, setRole] = useState('');
  const [group, setGroup] = useState<string | null>(null);
  const clusters = useMemo(() => [...new Set((nodes.data?.nodes ?? []).map((n) => n.cluster))].sort(), [nodes.data]);
  const groups = usePollFn<NodeGroup[]>(cluster || null, async () => (await get<{ node_groups: NodeGroup[] }>(`/clusters/${enc(cluster)}/node-groups`)).node_groups, 10000);
  const rows = useMemo(
    () =>
      (nodes.data?.nodes ?? []).filter(
        (n) =>
          (!cluster || n.cluster === cluster) &&
          (!health || (health === 'revoked' ? n.status === 'revoked' : n.status === 'active' && n.health === health)) &&
          (!role || n.roles.some((r) => r.role === role)) &&
          (!group || n.group_id === group),
      ),
    [nodes.data, cluster, health, role, group],
  );
  const cols: Column<CompactNode>[] = [
    { key: 'name', title: 'Node', render: (n) => <Link href={`/nodes/${enc(n.cluster)}/${n.id}`}>{n.name}</Link> },
    { key: 'cluster', title: 'Cluster' },
    { key: 'health', title: 'Health', value: (n) => (n.status === 'revoked' ? 'revoked' : n.health), render: (n) => <HealthBadge n={n} /> },
    { key: 'age', title: 'Last heartbeat', value: (n) => n.heartbeat_age_seconds ?? 1e9, render: (n) => age(n.heartbeat_age_seconds) },
    { key: 'roles', title: 'Roles', value: (n) => rolesText(n.roles) },
    { key: 'cpu', title: 'CPU', value: (n) => (n.load?.cpu_permille ?? -1) / 10, render: (n) => (n.load?.cpu_permille !== undefined ? `${(n.load.cpu_permille / 10).toFixed(1)}%` : '—') },
    { key: 'wl', title: 'Workloads', value: (n) => `${n.workloads.running}/${n.workloads.desired}` },
    { key: 'agent_version', title: 'Version' },
    { key: 'owner', title: 'Owner', value: (n) => (n.org ? `org ${n.org}` : n.ownership) },
  ];
  return (
    <div>
      <h2>Nodes</h2>
      <div class="filters">
        <select aria-label="cluster" value={cluster} onChange={(e) => { setCluster((e.target as HTMLSelectElement).value); setGroup(null); }}>
          <option value="">all clusters</option>
          {clusters.map((c) => <option value={c}>{c}</option>)}
        </select>
        <select aria-label="health" value={health} onChange={(e) => setHealth((e.target as HTMLSelectElement).value)}>
          <option value="">any health</option>
          <option value="online">online</option>
          <option value="stale">stale</option>
          <option value="offline">offline</option>
          <option value="revoked">revoked</option>
        </select>
        <select aria-label="role" value={role} onChange={(e) => setRole((e.target as HTMLSelectElement).value)}>
          <option value="">any role</option>
          {ROLES.map((r) => <option value={r}>{r}</option>)}
        </select>
      </div>
      <div class="split">
        {cluster ? (
          <aside>
            <h4>Groups</h4>
            <a href="#" class={group === null ? 'picked' : ''} onClick={(e) => { e.preventDefault(); setGroup(null); }}>all</a>
            {groups.data ? <GroupTree groups={groups.data} nodes={nodes.data?.nodes ?? []} onPick={setGroup} picked={group} /> : null}
          </aside>
        ) : null}
        <div class="grow">
          <PollState poll={nodes}>
            <Table rows={rows} columns={cols} rowKey={(n) => n.id} empty="No nodes yet: create a join token and start rap-node-agent." filterPlaceholder="Search name, role, version…" testid="nodes-table" />
          </PollState>
        </div>
      </div>
    </div>
  );
}

// ---------------- Node detail ----------------

export function NodeDetailPage(props: { cluster: string; id: string }) {
  const base = `/clusters/${enc(props.cluster)}/nodes/${props.id}`;
  const node = usePoll<{ node: any }>(base);
  // Live health and heartbeat (includes the node's presence in live state, ~1 s fresh).
  const live = usePoll<{ nodes: CompactNode[] }>(`/console/nodes?cluster=${enc(props.cluster)}&node=${props.id}`);
  const ln = live.data?.nodes[0];
  const hb = usePoll<{ heartbeats: { at: string; state: any }[] }>(`${base}/heartbeats?limit=60`, 5000);
  const audit = usePoll<{ events: any[] }>(`/console/nodes/${props.id}/audit?limit=100`, 5000);
  const n = node.data?.node;
  const reported: any[] = n?.last_state?.workloads ?? [];
  const cpu = (hb.data?.heartbeats ?? []).slice().reverse().map((h) => (h.state?.load?.cpu_permille ?? 0) / 10);
  const mem = (hb.data?.heartbeats ?? []).slice().reverse().map((h) => (h.state?.load?.memory_kib ?? 0) / 1024);
  const ages = (hb.data?.heartbeats ?? []).slice().reverse().map((h, i, arr) => (i === 0 ? 0 : (Date.parse(h.at) - Date.parse(arr[i - 1].at)) / 1000));
  const history = (hb.data?.heartbeats ?? []).slice().reverse();
  const rx = history.map((h) => (h.state?.load?.net_rx_bps ?? 0) / 1024);
  const tx = history.map((h) => (h.state?.load?.net_tx_bps ?? 0) / 1024);
  const rtts = history.map((h) => {
    const v = Object.values(h.state?.load?.peer_rtt_ms ?? {}) as number[];
    return v.length ? v.reduce((a, b) => a + b, 0) / v.length : 0;
  });
  // Heartbeat latency: the live heartbeat age, sampled client-side at every poll.
  const hbAge = useSeries(ln && ln.heartbeat_age_seconds !== null ? ln.heartbeat_age_seconds : null, live.updatedAt);
  const revoke = async () => {
    if (!(await confirmAction('Revoke node', <>Revoke <strong>{n.name}</strong>? All its certificates are revoked at once and it can never rejoin with this key.</>, 'Revoke node'))) return;
    if (await attempt('Revoke', () => highRisk('Revoking a node is a trust change.', () => post(`${base}/revoke`, { reason: 'revoked from the console' })))) {
      toast('Node revoked');
      node.reload();
    }
  };
  return (
    <div>
      <p>
        <Link href="/nodes">‹ Nodes</Link>
      </p>
      <PollState poll={node}>
        {n ? (
          <>
            <h2>
              {n.name} <HealthBadge n={ln ?? n} />
            </h2>
            <div class="grid2">
              <section>
                <h3>Identity</h3>
                <dl>
                  <dt>id</dt>
                  <dd><code>{n.id}</code></dd>
                  <dt>cluster</dt>
                  <dd><Link href={`/clusters/${enc(n.cluster)}`}>{n.cluster}</Link></dd>
                  <dt>public key</dt>
                  <dd><code class="wrap">{n.public_key}</code></dd>
                  <dt>ownership</dt>
                  <dd>{n.ownership}{n.org ? ` (${n.org})` : ''}</dd>
                  <dt>status</dt>
                  <dd>{n.status}{n.revoked_at ? ` since ${n.revoked_at}` : ''}</dd>
                  <dt>agent version</dt>
                  <dd>{n.agent_version ?? '—'}</dd>
                  <dt>last heartbeat</dt>
                  <dd>
                    <span data-testid="last-heartbeat">{ln?.last_heartbeat_at ?? n.last_heartbeat_at ?? 'never'}</span>
                    {ln ? <span class="muted"> ({age(ln.heartbeat_age_seconds)})</span> : null}
                  </dd>
                  <dt>desired state version</dt>
                  <dd>{n.desired_state_version}</dd>
                  <dt>partition state</dt>
                  <dd>{n.last_state?.partition_state ?? '—'}</dd>
                  <dt>facts</dt>
                  <dd><code class="wrap">{JSON.stringify(n.facts)}</code></dd>
                </dl>
              </section>
              <section>
                <h3>Load</h3>
                <div class="charts">
                  <Sparkline values={cpu} label="CPU" unit="%" max={100} />
                  <Sparkline values={mem} label="Memory" unit=" MiB" />
                  <Sparkline values={ages} label="Between stored heartbeats" unit=" s" />
                  <Sparkline values={hbAge} label="Heartbeat age (live)" unit=" s" />
                  <Sparkline values={rx} label="Traffic in" unit=" KiB/s" />
                  <Sparkline values={tx} label="Traffic out" unit=" KiB/s" />
                  <Sparkline values={rtts} label="Fabric RTT (mean over peers)" unit=" ms" />
                </div>
                <h3>Capabilities (reported)</h3>
                <div class="chips">{(n.capabilities ?? []).length ? n.capabilities.map((c: string) => <Badge kind="cap">{c}</Badge>) : <span class="muted">none</span>}</div>
              </section>
            </div>
            <RoleEditor cluster={props.cluster} nodeId={n.id} roles={n.roles ?? []} revoked={n.status === 'revoked'} onSaved={node.reload} />
            <h3>Workloads: desired vs reported</h3>
            {(n.workloads ?? []).length === 0 && reported.length === 0 ? (
              <Empty>No workloads desired for this node.</Empty>
            ) : (
              <table class="compact" data-testid="workloads">
                <thead>
                  <tr><th>name</th><th>kind</th><th>desired version</th><th>reported state</th></tr>
                </thead>
                <tbody>
                  {(n.workloads ?? []).map((w: any) => {
                    const r = reported.find((x) => x.name === w.name);
                    return (
                      <tr>
                        <td>{w.name}</td>
                        <td>{w.kind}</td>
                        <td>{w.version}</td>
                        <td>{r ? <Badge kind={r.state === 'running' ? 'online' : 'stale'}>{r.state}</Badge> : <Badge kind="offline">not reported</Badge>}</td>
                      </tr>
                    );
                  })}
                  {reported.filter((r) => !(n.workloads ?? []).some((w: any) => w.name === r.name)).map((r) => (
                    <tr><td>{r.name}</td><td>—</td><td>not desired</td><td><Badge kind="stale">{r.state}</Badge></td></tr>
                  ))}
                </tbody>
              </table>
            )}
            <h3>Certificates</h3>
            <table class="compact">
              <thead><tr><th>serial</th><th>not before</th><th>not after</th><th>revoked</th></tr></thead>
              <tbody>
                {(n.certificates ?? []).map((c: any) => (
                  <tr><td>{c.serial}</td><td>{c.not_before}</td><td>{c.not_after}</td><td>{c.revoked_at ? `${c.revoked_at} ${c.revoke_reason ?? ''}` : '—'}</td></tr>
                ))}
              </tbody>
            </table>
            <h3>Audit timeline</h3>
            {audit.data?.events.length ? (
              <ol class="timeline" data-testid="node-audit">
                {audit.data.events.map((e) => (
                  <li><time>{e.at}</time> <strong>{e.action}</strong> <span class="muted">by {e.actor ?? 'system'}</span> {e.outcome !== 'success' ? <Badge kind="offline">{e.outcome}</Badge> : null}</li>
                ))}
              </ol>
            ) : (
              <Empty>No audit events for this node.</Empty>
            )}
            {n.status === 'active' ? (
              <div class="danger-zone">
                <h3>Danger zone</h3>
                <button class="danger" onClick={revoke}>Revoke node…</button>
              </div>
            ) : null}
          </>
        ) : null}
      </PollState>
    </div>
  );
}

// Assign / restrict / disable roles of one node (replaces the set through PUT .../roles).
function RoleEditor(props: { cluster: string; nodeId: string; roles: Role[]; revoked: boolean; onSaved: () => void }) {
  const [role, setRole] = useState(ROLES[0]);
  const [org, setOrg] = useState('');
  const orgs = usePoll<{ orgs: { slug: string }[] }>('/orgs', 0);
  const save = async (next: Role[], what: string) => {
    const ok = await attempt(what, () =>
      highRisk('Role assignment changes what a node may run.', () =>
        put(`/clusters/${enc(props.cluster)}/nodes/${props.nodeId}/roles`, { roles: next.map((r) => (r.org ? { role: r.role, org: r.org } : { role: r.role })) }),
      ),
    );
    if (ok) {
      toast(`${what}: saved`);
      props.onSaved();
    }
  };
  return (
    <section>
      <h3>Roles</h3>
      {props.roles.length === 0 ? <Empty>No roles: the node runs nothing.</Empty> : null}
      <ul class="roles" data-testid="node-roles">
        {props.roles.map((r) => (
          <li>
            <Badge kind="role">{r.role}</Badge> {r.org ? <span class="muted">restricted to org {r.org}</span> : <span class="muted">platform-wide</span>}{' '}
            {!props.revoked ? (
              <button
                class="link danger"
                onClick={async () => {
                  if (await confirmAction('Disable role', <>Remove role <strong>{r.role}</strong> from this node? Workloads needing it stop.</>, 'Disable role'))
                    save(props.roles.filter((x) => x !== r), 'Disable role');
                }}
              >
                disable
              </button>
            ) : null}
          </li>
        ))}
      </ul>
      {!props.revoked ? (
        <form
          class="inline-form"
          onSubmit={(e) => {
            e.preventDefault();
            save([...props.roles, { role, org: org || null }], 'Assign role');
          }}
        >
          <select name="role" value={role} onChange={(e) => setRole((e.target as HTMLSelectElement).value)}>
            {ROLES.map((r) => <option value={r}>{r}</option>)}
          </select>
          <select name="role-org" value={org} onChange={(e) => setOrg((e.target as HTMLSelectElement).value)}>
            <option value="">all organizations</option>
            {orgs.data?.orgs.map((o) => <option value={o.slug}>only org {o.slug}</option>)}
          </select>
          <button class="primary" data-testid="assign-role">Assign role (step-up)</button>
        </form>
      ) : null}
    </section>
  );
}

// ---------------- Join requests ----------------

interface JoinData {
  clusters: string[];
  requests: JoinRequest[];
  tokens: any[];
}

async function loadJoinData(status: string): Promise<JoinData> {
  const cl = await get<{ clusters: { slug: string }[] }>('/clusters');
  const slugs = cl.clusters.map((c) => c.slug);
  const reqs = await Promise.all(slugs.map((s) => get<{ join_requests: JoinRequest[] }>(`/clusters/${enc(s)}/join-requests${status ? `?status=${status}` : ''}`)));
  const toks = await Promise.all(slugs.map((s) => get<{ join_tokens: any[] }>(`/clusters/${enc(s)}/join-tokens`)));
  return { clusters: slugs, requests: reqs.flatMap((r) => r.join_requests), tokens: toks.flatMap((t) => t.join_tokens) };
}

export function JoinRequestsPage() {
  const [status, setStatus] = useState('pending');
  const data = usePollFn<JoinData>(`join:${status}`, () => loadJoinData(status));
  const [newToken, setNewToken] = useState<{ token: string; cluster: string } | null>(null);
  const [tc, setTc] = useState('');
  const [ttl, setTtl] = useState('3600');
  const [uses, setUses] = useState('1');
  const [desc, setDesc] = useState('');
  const approve = async (r: JoinRequest) => {
    const ok = await attempt('Approve', () =>
      highRisk(`Approving ${String(r.facts.hostname ?? r.id)} issues it a node certificate for cluster ${r.cluster}.`, () =>
        post(`/clusters/${enc(r.cluster)}/join-requests/${r.id}/approve`, {}),
      ),
    );
    if (ok) {
      toast(`Approved ${String(r.facts.hostname ?? r.id)}`);
      data.reload();
    }
  };
  const reject = async (r: JoinRequest) => {
    if (!(await confirmAction('Reject join request', <>Reject the join request of <strong>{String(r.facts.hostname)}</strong>? The agent has to enroll again with a new key.</>, 'Reject'))) return;
    if (await attempt('Reject', () => post(`/clusters/${enc(r.cluster)}/join-requests/${r.id}/reject`, { reason: 'rejected from the console' }))) data.reload();
  };
  const revokeToken = async (t: any) => {
    if (!(await confirmAction('Revoke join token', <>Revoke join token <code>{t.id}</code> ({t.description || 'no description'})? Agents can no longer enroll with it.</>, 'Revoke token'))) return;
    if (await attempt('Revoke token', () => highRisk('Revoking a join token is a trust change.', () => post(`/clusters/${enc(t.cluster)}/join-tokens/${t.id}/revoke`, {})))) data.reload();
  };
  const reqCols: Column<JoinRequest>[] = [
    { key: 'host', title: 'Host', value: (r) => String(r.facts.hostname ?? '') },
    { key: 'cluster', title: 'Cluster' },
    { key: 'created_at', title: 'Requested' },
    { key: 'status', title: 'Status', render: (r) => <Badge kind={r.status === 'pending' ? 'stale' : r.status === 'approved' ? 'online' : 'offline'}>{r.status}</Badge> },
    { key: 'facts', title: 'Facts', value: (r) => `${r.facts.os ?? ''} ${r.facts.arch ?? ''} ${r.facts.cpus ?? ''} cpu ${r.facts.memory_mb ?? ''} MB ${(r.facts.addresses as string[] | undefined)?.join(' ') ?? ''}` },
    {
      key: 'caps',
      title: 'Requested capabilities',
      value: (r) => r.capabilities.join(' '),
      render: (r) => <CapCompare caps={r.capabilities} />,
    },
    { key: 'key', title: 'Key', value: (r) => r.public_key, render: (r) => <code title={r.public_key}>{r.public_key.slice(0, 12)}…</code> },
    {
      key: 'actions',
      title: '',
      value: () => '',
      render: (r) =>
        r.status === 'pending' ? (
          <span class="row-actions">
            <button class="primary" data-testid={`approve-${String(r.facts.hostname)}`} onClick={() => approve(r)}>Approve</button>
            <button class="danger" onClick={() => reject(r)}>Reject</button>
          </span>
        ) : r.node_id ? (
          <Link href={`/nodes/${enc(r.cluster)}/${r.node_id}`}>node</Link>
        ) : (
          r.reason ?? ''
        ),
    },
  ];
  const tokCols: Column<any>[] = [
    { key: 'id', title: 'Token id', render: (t) => <code>{t.id.slice(0, 8)}</code> },
    { key: 'cluster', title: 'Cluster' },
    { key: 'description', title: 'Description' },
    { key: 'state', title: 'State', render: (t) => <Badge kind={t.state === 'active' ? 'online' : 'offline'}>{t.state}</Badge> },
    { key: 'uses', title: 'Uses', value: (t) => `${t.uses}/${t.max_uses}` },
    { key: 'expires_at', title: 'Expires' },
    { key: 'a', title: '', value: () => '', render: (t) => (t.state === 'active' ? <button class="danger" onClick={() => revokeToken(t)}>Revoke…</button> : null) },
  ];
  return (
    <div>
      <h2>Join requests</h2>
      <div class="filters">
        <select aria-label="status" value={status} onChange={(e) => setStatus((e.target as HTMLSelectElement).value)}>
          <option value="pending">pending</option>
          <option value="approved">approved</option>
          <option value="rejected">rejected</option>
          <option value="">all</option>
        </select>
      </div>
      <PollState poll={data}>
        {data.data ? <Table rows={data.data.requests} columns={reqCols} rowKey={(r) => r.id} empty={status === 'pending' ? 'No pending join requests. Start rap-node-agent with a join token; its request shows up here.' : 'None.'} testid="join-requests" /> : null}
        <h3>Join tokens</h3>
        {newToken ? (
          <div class="copy-once" data-testid="new-token">
            <p>
              <strong>Copy this join token now: it is shown only once</strong> (cluster {newToken.cluster}).
            </p>
            <code class="wrap">{newToken.token}</code>
            <div class="actions">
              <button onClick={() => navigator.clipboard?.writeText(newToken.token).then(() => toast('Copied'), () => toast('Copy failed: select the text'))}>Copy</button>
              <button onClick={() => setNewToken(null)}>I have stored it — hide</button>
            </div>
          </div>
        ) : null}
        <form
          class="inline-form"
          onSubmit={async (e) => {
            e.preventDefault();
            const cluster = tc || data.data?.clusters[0] || '';
            let res: any = null;
            const ok = await attempt('Create token', async () => {
              res = await highRisk('A join token lets machines ask to join the cluster.', () =>
                post(`/clusters/${enc(cluster)}/join-tokens`, { ttl_seconds: Number(ttl), max_uses: Number(uses), ...(desc ? { description: desc } : {}) }),
              );
              return res;
            });
            if (ok && res) {
              setNewToken({ token: res.token, cluster });
              data.reload();
            }
          }}
        >
          <select aria-label="token cluster" value={tc || data.data?.clusters[0] || ""} onChange={(e) => setTc((e.target as HTMLSelectElement).value)}>
            {data.data?.clusters.map((c) => <option value={c}>{c}</option>)}
          </select>
          <label>ttl s <input type="number" min={60} max={604800} value={ttl} onInput={(e) => setTtl((e.target as HTMLInputElement).value)} /></label>
          <label>max uses <input type="number" min={1} max={10000} value={uses} onInput={(e) => setUses((e.target as HTMLInputElement).value)} /></label>
          <input placeholder="description" value={desc} onInput={(e) => setDesc((e.target as HTMLInputElement).value)} />
          <button class="primary">Create token (step-up)</button>
        </form>
        {data.data ? <Table rows={data.data.tokens} columns={tokCols} rowKey={(t) => t.id} empty="No join tokens." initialSort="state" /> : null}
      </PollState>
    </div>
  );
}

function CapCompare(props: { caps: string[] }) {
  const set = new Set(props.caps);
  const unknown = props.caps.filter((c) => !CAPABILITIES.includes(c));
  return (
    <span class="caps" title={CAPABILITIES.map((c) => `${set.has(c) ? '✔' : '·'} ${c}`).join('\n')}>
      {props.caps.length === 0 ? <span class="muted">none</span> : props.caps.map((c) => <Badge kind="cap">{c.replace(/^can_/, '')}</Badge>)}
      {unknown.length ? <Badge kind="offline">unknown: {unknown.join(',')}</Badge> : null}
    </span>
  );
}

// ---------------- Role assignments ----------------

export function RolesPage() {
  const nodes = usePoll<{ nodes: CompactNode[] }>('/console/nodes');
  const ov = usePoll<Overview>('/console/overview', 5000);
  const rows = useMemo(
    () => (nodes.data?.nodes ?? []).filter((n) => n.status === 'active').flatMap((n) => n.roles.map((r) => ({ n, r, key: `${n.id}:${r.role}:${r.org ?? ''}` }))),
    [nodes.data],
  );
  const orgs = usePoll<{ orgs: { slug: string }[] }>('/orgs', 0);
  const [nodeId, setNodeId] = useState('');
  const [role, setRole] = useState(ROLES[0]);
  const [org, setOrg] = useState('');
  const active = (nodes.data?.nodes ?? []).filter((n) => n.status === 'active');
  const setRoles = async (n: CompactNode, next: Role[], what: string) => {
    const ok = await attempt(what, () =>
      highRisk('Role assignment changes what a node may run.', () =>
        put(`/clusters/${enc(n.cluster)}/nodes/${n.id}/roles`, { roles: next.map((r) => (r.org ? { role: r.role, org: r.org } : { role: r.role })) }),
      ),
    );
    if (ok) {
      toast(`${what}: saved`);
      nodes.reload();
    }
  };
  const cols: Column<{ n: CompactNode; r: Role; key: string }>[] = [
    { key: 'role', title: 'Role', value: (x) => x.r.role, render: (x) => <Badge kind="role">{x.r.role}</Badge> },
    { key: 'org', title: 'Restricted to', value: (x) => x.r.org ?? 'all organizations' },
    { key: 'node', title: 'Node', value: (x) => x.n.name, render: (x) => <Link href={`/nodes/${enc(x.n.cluster)}/${x.n.id}`}>{x.n.name}</Link> },
    { key: 'cluster', title: 'Cluster', value: (x) => x.n.cluster },
    { key: 'health', title: 'Node health', value: (x) => x.n.health, render: (x) => <HealthBadge n={x.n} /> },
    {
      key: 'a',
      title: '',
      value: () => '',
      render: (x) => (
        <button
          class="danger"
          onClick={async () => {
            if (await confirmAction('Disable role', <>Remove role <strong>{x.r.role}</strong> from node <strong>{x.n.name}</strong>? Workloads needing it stop.</>, 'Disable role'))
              setRoles(x.n, x.n.roles.filter((r) => !(r.role === x.r.role && r.org === x.r.org)), 'Disable role');
          }}
        >
          Disable…
        </button>
      ),
    },
  ];
  return (
    <div>
      <h2>Role assignments</h2>
      <p class="muted">Assign, restrict or disable roles on a node's page (step-up required). Capabilities are reported facts; only roles authorize workloads.</p>
      {ov.data ? (
        <table class="compact">
          <thead>
            <tr>
              <th>cluster</th>
              {ROLES.map((r) => <th class="vert">{r}</th>)}
            </tr>
          </thead>
          <tbody>
            {ov.data.clusters.map((c) => (
              <tr>
                <td>{c.slug}</td>
                {ROLES.map((r) => {
                  const v = c.role_coverage[r];
                  const gap = c.role_gaps.includes(r);
                  return <td class={gap ? 'cell-bad' : v ? 'cell-ok' : ''}>{v ? `${v.online}/${v.nodes}` : gap ? 'gap' : ''}</td>;
                })}
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      <form
        class="inline-form"
        onSubmit={(e) => {
          e.preventDefault();
          const n = active.find((x) => x.id === nodeId);
          if (!n) return toast('Pick a node');
          setRoles(n, [...n.roles, { role, org: org || null }], 'Assign role');
        }}
      >
        <h3>Assign</h3>
        <select aria-label="node" value={nodeId} onChange={(e) => setNodeId((e.target as HTMLSelectElement).value)} required>
          <option value="">node…</option>
          {active.map((n) => <option value={n.id}>{`${n.cluster} / ${n.name}`}</option>)}
        </select>
        <select aria-label="role" value={role} onChange={(e) => setRole((e.target as HTMLSelectElement).value)}>
          {ROLES.map((r) => <option value={r}>{r}</option>)}
        </select>
        <select aria-label="organization" value={org} onChange={(e) => setOrg((e.target as HTMLSelectElement).value)}>
          <option value="">all organizations</option>
          {orgs.data?.orgs.map((o) => <option value={o.slug}>only org {o.slug}</option>)}
        </select>
        <button class="primary">Assign role (step-up)</button>
      </form>
      <PollState poll={nodes}>
        <Table rows={rows} columns={cols} rowKey={(x) => x.key} empty="No roles assigned yet." testid="roles-table" />
      </PollState>
    </div>
  );
}

// ---------------- Workloads ----------------

export function WorkloadsPage() {
  const nodes = usePoll<{ nodes: CompactNode[] }>('/console/nodes');
  const rows = (nodes.data?.nodes ?? []).filter((n) => n.status === 'active' && n.workloads.desired > 0);
  const cols: Column<CompactNode>[] = [
    { key: 'name', title: 'Node', render: (n) => <Link href={`/nodes/${enc(n.cluster)}/${n.id}`}>{n.name}</Link> },
    { key: 'cluster', title: 'Cluster' },
    { key: 'health', title: 'Health', render: (n) => <HealthBadge n={n} /> },
    { key: 'desired', title: 'Desired', value: (n) => n.workloads.desired },
    { key: 'running', title: 'Running', value: (n) => n.workloads.running },
    {
      key: 'state',
      title: 'State',
      value: (n) => (n.workloads.running >= n.workloads.desired ? 'ok' : 'degraded'),
      render: (n) => (n.workloads.running >= n.workloads.desired ? <Badge kind="online">ok</Badge> : <Badge kind="stale">{n.workloads.desired - n.workloads.running} not running</Badge>),
    },
    { key: 'roles', title: 'Roles', value: (n) => rolesText(n.roles) },
  ];
  const desired = rows.reduce((s, n) => s + n.workloads.desired, 0);
  const running = rows.reduce((s, n) => s + n.workloads.running, 0);
  return (
    <div>
      <h2>Service workloads</h2>
      <div class="cards">
        <Card title="Desired" value={desired} />
        <Card title="Running" value={running} kind={running < desired ? 'warn' : 'ok'} />
      </div>
      <PollState poll={nodes}>
        <Table rows={rows} columns={cols} rowKey={(n) => n.id} empty="No workloads desired on any node (set them with rapctl nodes set-workloads)." />
      </PollState>
    </div>
  );
}

// ---------------- Audit ----------------

export function AuditPage(props: { org?: string }) {
  const [verify, setVerify] = useState<any>(null);
  const [verr, setVerr] = useState<ApiError | null>(null);
  const [outcome, setOutcome] = useState('');
  const q = props.org ? `/audit?limit=1000&org=${enc(props.org)}` : '/audit?limit=1000';
  const ev = usePoll<{ events: any[] }>(q, 5000);
  const rows = (ev.data?.events ?? []).filter((e) => !outcome || e.outcome === outcome || (outcome === 'success' && !e.outcome));
  const cols: Column<any>[] = [
    { key: 'id', title: '#', value: (e) => -e.id, render: (e) => e.id },
    { key: 'at', title: 'Time' },
    { key: 'actor', title: 'Actor', value: (e) => e.actor ?? 'system' },
    ...(props.org ? [] : [{ key: 'org', title: 'Org', value: (e: any) => e.org ?? '' }]),
    { key: 'action', title: 'Action' },
    { key: 'target', title: 'Target' },
    { key: 'outcome', title: 'Outcome', value: (e) => e.outcome ?? 'success', render: (e) => (e.outcome && e.outcome !== 'success' ? <Badge kind="offline">{e.outcome}</Badge> : 'success') },
    { key: 'details', title: 'Details', value: (e) => JSON.stringify(e.details ?? {}), render: (e) => <code class="small">{JSON.stringify(e.details ?? {})}</code> },
  ];
  return (
    <div>
      <h2>Audit{props.org ? ` — ${props.org}` : ''}</h2>
      <div class="filters">
        <select aria-label="outcome" value={outcome} onChange={(e) => setOutcome((e.target as HTMLSelectElement).value)}>
          <option value="">any outcome</option>
          <option value="success">success</option>
          <option value="denied">denied</option>
        </select>
        {!props.org ? (
          <button
            onClick={async () => {
              setVerr(null);
              try {
                setVerify(await get('/audit/verify'));
              } catch (e) {
                setVerr(e as ApiError);
              }
            }}
          >
            Verify hash chain
          </button>
        ) : null}
        {verify ? (
          <span data-testid="verify-result" class={verify.ok ? 'ok' : 'bad'}>
            {verify.ok ? `✔ chain intact: ${verify.events} events, head ${verify.head_hash.slice(0, 16)}…` : `✘ broken at #${verify.first_bad_id}: ${verify.problem}`}
          </span>
        ) : null}
      </div>
      <ErrorBox error={verr} />
      <PollState poll={ev}>
        <Table rows={rows} columns={cols} rowKey={(e) => String(e.id)} empty="No audit events." filterPlaceholder="Filter by action, actor, target…" initialSort="id" testid="audit-table" />
      </PollState>
    </div>
  );
}

// ---------------- Trust ----------------

export function TrustPage() {
  const t = usePoll<{ clusters: any[]; revocations: any[]; config_signing_keys?: any[] }>('/console/trust', 10000);
  return (
    <div>
      <h2>Trust and certificates</h2>
      <PollState poll={t}>
        {t.data ? (
          <>
            <Table
              rows={t.data.clusters}
              rowKey={(c) => c.slug}
              empty="No clusters."
              columns={[
                { key: 'slug', title: 'Cluster' },
                { key: 'ca_nb', title: 'CA valid from', value: (c) => c.ca.not_before },
                { key: 'ca_na', title: 'CA expires', value: (c) => c.ca.not_after },
                { key: 'sealed', title: 'CA key sealed with', value: (c) => c.ca.sealed_with },
                { key: 'valid', title: 'Valid node certs', value: (c) => c.certificates.valid },
                { key: 'exp24', title: 'Expiring < 24 h', value: (c) => c.certificates.expiring_24h },
                { key: 'expired', title: 'Expired', value: (c) => c.certificates.expired },
                { key: 'revoked', title: 'Revoked certs', value: (c) => c.certificates.revoked },
                { key: 'rn', title: 'Revoked nodes', value: (c) => c.revoked_nodes },
                { key: 'tok', title: 'Active join tokens', value: (c) => c.active_join_tokens },
              ]}
            />
            <h3>Config-signing keys</h3>
            <Table
              rows={t.data.config_signing_keys ?? []}
              rowKey={(k) => k.cluster + ':' + k.key_id}
              empty="No config-signing key yet (created at the first config compilation)."
              columns={[
                { key: 'cluster', title: 'Cluster' },
                { key: 'key_id', title: 'Key id' },
                { key: 'status', title: 'Status' },
                { key: 'not_before', title: 'Valid from' },
                { key: 'not_after', title: 'Valid until' },
              ]}
            />
            <h3>Recent revocations</h3>
            <Table
              rows={t.data.revocations}
              rowKey={(r) => r.serial}
              empty="No certificate has been revoked."
              columns={[
                { key: 'serial', title: 'Serial' },
                { key: 'cluster', title: 'Cluster' },
                { key: 'node', title: 'Node', value: (r) => r.node.name, render: (r) => <Link href={`/nodes/${enc(r.cluster)}/${r.node.id}`}>{r.node.name}</Link> },
                { key: 'revoked_at', title: 'Revoked' },
                { key: 'reason', title: 'Reason' },
                { key: 'not_after', title: 'Would have expired' },
              ]}
            />
          </>
        ) : null}
      </PollState>
    </div>
  );
}

export function TopologyPage() {
  const nodes = usePoll<{ nodes: CompactNode[] }>('/console/nodes');
  const clusters = useMemo(() => [...new Set((nodes.data?.nodes ?? []).map((n) => n.cluster))].sort(), [nodes.data]);
  return (
    <div>
      <h2>Topology</h2>
      <PollState poll={nodes}>
        {clusters.length === 0 ? <Empty>No nodes in any cluster yet.</Empty> : null}
        {clusters.map((c) => (
          <ClusterTopology cluster={c} nodes={nodes.data!.nodes.filter((n) => n.cluster === c)} />
        ))}
      </PollState>
    </div>
  );
}

function ClusterTopology(props: { cluster: string; nodes: CompactNode[] }) {
  const groups = usePoll<{ node_groups: NodeGroup[] }>(`/clusters/${enc(props.cluster)}/node-groups`, 10000);
  const fabric = usePoll<FabricView>(`/clusters/${enc(props.cluster)}/fabric`, 2000);
  return (
    <section>
      <h3>
        <Link href={`/clusters/${enc(props.cluster)}`}>{props.cluster}</Link>
      </h3>
      {groups.data ? <TopologyMap cluster={props.cluster} nodes={props.nodes} groups={groups.data.node_groups} fabric={fabric.data} /> : <ErrorBox error={groups.error} />}
    </section>
  );
}

export function goNode(n: CompactNode) {
  navigate(`/nodes/${enc(n.cluster)}/${n.id}`);
}
