// Organization admin panel: a tenant-safe projection of one organization (resources, users and
// groups, policies, active sessions, allowed entry and egress points, its audit, safe status). It
// calls only /api/v1/orgs/{slug}/... and /api/v1/audit?org=: never nodes, relays, routes,
// certificates or other tenants.
import { useRef, useState } from 'preact/hooks';
import { del, post } from './api';
import { Badge, Card, Column, Empty, PollState, Sparkline, Table, age, attempt, confirmAction, highRisk, toast, usePoll, useSeries } from './ui';
import { AuditPage } from './platform';

const enc = encodeURIComponent;

export function OrgStatusPage(props: { slug: string }) {
  const st = usePoll<any>(`/orgs/${enc(props.slug)}/status`, 5000);
  return (
    <div>
      <h2>{st.data?.org?.name ?? props.slug}</h2>
      <PollState poll={st}>
        {st.data ? (
          <>
            <div class="cards">
              <Card title="Members" value={st.data.members} sub={`${st.data.admins} admins`} />
              <Card title="Groups" value={st.data.groups} />
              <Card title="Resources" value={st.data.resources} sub={Object.entries(st.data.resources_by_protocol ?? {}).map(([k, v]) => `${k} ${v}`).join(' · ')} />
              <Card title="Policies" value={st.data.policies} />
              <Card title="Denied attempts (24 h)" value={st.data.denied_events_24h} kind={st.data.denied_events_24h ? 'warn' : 'ok'} />
            </div>
            <h3>Egress</h3>
            {st.data.egress_pools.length === 0 ? (
              <Empty>No egress pools for this organization.</Empty>
            ) : (
              <ul>
                {st.data.egress_pools.map((p: any) => (
                  <li>
                    {p.name} <Badge kind={p.status === 'available' ? 'online' : p.status === 'unassigned' ? 'stale' : 'offline'}>{p.status}</Badge>
                  </li>
                ))}
              </ul>
            )}
          </>
        ) : null}
      </PollState>
    </div>
  );
}

export function OrgResourcesPage(props: { slug: string }) {
  const base = `/orgs/${enc(props.slug)}/resources`;
  const res = usePoll<{ resources: any[] }>(base, 5000);
  const [f, setF] = useState({ name: '', protocol: 'rdp', address: '' });
  const remove = async (r: any) => {
    if (!(await confirmAction('Delete resource', <>Delete resource <strong>{r.name}</strong>? Policies lose it at once.</>, 'Delete'))) return;
    if (await attempt('Delete', () => del(`${base}/${r.id}`))) res.reload();
  };
  const cols: Column<any>[] = [
    { key: 'name', title: 'Name' },
    { key: 'protocol', title: 'Protocol' },
    { key: 'address', title: 'Address' },
    { key: 'egress_pool', title: 'Egress pool' },
    { key: 'credential_ref', title: 'Credential ref' },
    { key: 'a', title: '', value: () => '', render: (r) => <button class="danger" onClick={() => remove(r)}>Delete…</button> },
  ];
  return (
    <div>
      <h2>Resources</h2>
      <PollState poll={res}>
        <Table rows={res.data?.resources ?? []} columns={cols} rowKey={(r) => r.id} empty="No resources yet." testid="resources-table" />
      </PollState>
      <form
        class="inline-form"
        onSubmit={async (e) => {
          e.preventDefault();
          if (await attempt('Create resource', () => post(base, f))) {
            toast(`Resource ${f.name} created`);
            setF({ ...f, name: '', address: '' });
            res.reload();
          }
        }}
      >
        <input placeholder="name" value={f.name} onInput={(e) => setF({ ...f, name: (e.target as HTMLInputElement).value })} required />
        <select value={f.protocol} onChange={(e) => setF({ ...f, protocol: (e.target as HTMLSelectElement).value })}>
          {['rdp', 'ssh', 'vnc', 'tcp'].map((p) => <option value={p}>{p}</option>)}
        </select>
        <input placeholder="host:port" value={f.address} onInput={(e) => setF({ ...f, address: (e.target as HTMLInputElement).value })} required />
        <button class="primary">Add resource</button>
      </form>
    </div>
  );
}

export function OrgPeoplePage(props: { slug: string }) {
  const org = usePoll<any>(`/orgs/${enc(props.slug)}`, 5000);
  const groups = usePoll<{ groups: any[] }>(`/orgs/${enc(props.slug)}/groups`, 5000);
  const [email, setEmail] = useState('');
  const [role, setRole] = useState('org_member');
  const [gname, setGname] = useState('');
  const [gm, setGm] = useState<Record<string, string>>({});
  const delGroup = async (g: any) => {
    if (!(await confirmAction('Delete group', <>Delete group <strong>{g.name}</strong>? It is removed from every policy.</>, 'Delete'))) return;
    if (await attempt('Delete group', () => del(`/orgs/${enc(props.slug)}/groups/${g.id}`))) groups.reload();
  };
  return (
    <div>
      <h2>Users and groups</h2>
      <PollState poll={org}>
        <Table rows={org.data?.members ?? []} rowKey={(m: any) => m.email} columns={[{ key: 'email', title: 'Email' }, { key: 'role', title: 'Role' }]} empty="No members." />
      </PollState>
      <form
        class="inline-form"
        onSubmit={async (e) => {
          e.preventDefault();
          const add = () => post(`/orgs/${enc(props.slug)}/members`, { email, role });
          if (await attempt('Add member', () => (role === 'org_admin' ? highRisk('Granting org_admin is a high-risk action.', add) : add()))) {
            setEmail('');
            org.reload();
          }
        }}
      >
        <input type="email" placeholder="user@example.com (existing user)" value={email} onInput={(e) => setEmail((e.target as HTMLInputElement).value)} required />
        <select value={role} onChange={(e) => setRole((e.target as HTMLSelectElement).value)}>
          <option value="org_member">member</option>
          <option value="org_admin">admin (step-up)</option>
        </select>
        <button class="primary">Add member</button>
      </form>
      <h3>Groups</h3>
      <PollState poll={groups}>
        {(groups.data?.groups ?? []).length === 0 ? <Empty>No groups yet.</Empty> : null}
        {(groups.data?.groups ?? []).map((g) => (
          <div class="group-card">
            <strong>{g.name}</strong> <span class="muted">{g.members.map((m: any) => m.email).join(', ') || 'no members'}</span>
            <form
              class="inline-form"
              onSubmit={async (e) => {
                e.preventDefault();
                if (await attempt('Add to group', () => post(`/orgs/${enc(props.slug)}/groups/${g.id}/members`, { email: gm[g.id] ?? '' }))) groups.reload();
              }}
            >
              <input type="email" placeholder="member email" value={gm[g.id] ?? ''} onInput={(e) => setGm({ ...gm, [g.id]: (e.target as HTMLInputElement).value })} required />
              <button>Add</button>
              <button type="button" class="danger" onClick={() => delGroup(g)}>
                Delete group…
              </button>
            </form>
          </div>
        ))}
      </PollState>
      <form
        class="inline-form"
        onSubmit={async (e) => {
          e.preventDefault();
          if (await attempt('Create group', () => post(`/orgs/${enc(props.slug)}/groups`, { name: gname }))) {
            setGname('');
            groups.reload();
          }
        }}
      >
        <input placeholder="new group name" value={gname} onInput={(e) => setGname((e.target as HTMLInputElement).value)} required />
        <button>Create group</button>
      </form>
    </div>
  );
}

export function OrgPoliciesPage(props: { slug: string }) {
  const base = `/orgs/${enc(props.slug)}`;
  const pol = usePoll<{ policies: any[] }>(`${base}/policies`, 5000);
  const res = usePoll<{ resources: any[] }>(`${base}/resources`, 10000);
  const groups = usePoll<{ groups: any[] }>(`${base}/groups`, 10000);
  const [name, setName] = useState('');
  const [resource, setResource] = useState('');
  const [group, setGroup] = useState('');
  const [user, setUser] = useState('');
  const remove = async (p: any) => {
    if (!(await confirmAction('Delete policy', <>Delete policy <strong>{p.name}</strong>? Its subjects lose access at once.</>, 'Delete'))) return;
    if (await attempt('Delete policy', () => del(`${base}/policies/${p.id}`))) pol.reload();
  };
  const cols: Column<any>[] = [
    { key: 'name', title: 'Name' },
    { key: 'service', title: 'Service' },
    { key: 'subjects', title: 'Subjects', value: (p) => [...p.users.map((u: any) => u.email), ...p.groups.map((g: any) => `group ${g.name}`)].join(', ') },
    { key: 'resources', title: 'Resources', value: (p) => p.resources.map((r: any) => r.name).join(', ') },
    { key: 'a', title: '', value: () => '', render: (p) => <button class="danger" onClick={() => remove(p)}>Delete…</button> },
  ];
  const r = res.data?.resources.find((x) => x.id === resource);
  return (
    <div>
      <h2>Policies</h2>
      <PollState poll={pol}>
        <Table rows={pol.data?.policies ?? []} columns={cols} rowKey={(p) => p.id} empty="No policies yet." />
      </PollState>
      <form
        class="inline-form"
        onSubmit={async (e) => {
          e.preventDefault();
          if (!r) return toast('Pick a resource');
          const body = { name, service: r.protocol, users: user ? [user] : [], groups: group ? [group] : [], resources: [r.id] };
          if (await attempt('Create policy', () => post(`${base}/policies`, body))) {
            setName('');
            pol.reload();
          }
        }}
      >
        <input placeholder="policy name" value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} required />
        <select aria-label="resource" value={resource} onChange={(e) => setResource((e.target as HTMLSelectElement).value)} required>
          <option value="">resource…</option>
          {res.data?.resources.map((x) => <option value={x.id}>{`${x.name} (${x.protocol})`}</option>)}
        </select>
        <select aria-label="group" value={group} onChange={(e) => setGroup((e.target as HTMLSelectElement).value)}>
          <option value="">no group</option>
          {groups.data?.groups.map((g) => <option value={g.id}>{g.name}</option>)}
        </select>
        <input type="email" placeholder="or a user email" value={user} onInput={(e) => setUser((e.target as HTMLInputElement).value)} />
        <button class="primary">Allow</button>
      </form>
    </div>
  );
}

export function OrgAuditPage(props: { slug: string }) {
  return <AuditPage org={props.slug} />;
}

// ---------------- sessions ----------------

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 * 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 / 1024 / 1024).toFixed(2)} GiB`;
}

interface OrgSession {
  grant_id: string;
  user: { id: string; email: string };
  resource: { id: string; name: string; protocol: string };
  started_at: number;
  duration_seconds: number;
  expires_at: number;
  connections: number;
  bytes_up: number;
  bytes_down: number;
}

// Open TCP access sessions of the organization (live state, reported by the entries), with
// terminate (confirmation; the grant is revoked and the entry cuts the connection).
export function OrgSessionsPage(props: { slug: string }) {
  const base = `/orgs/${enc(props.slug)}/sessions`;
  const s = usePoll<{ sessions: OrgSession[]; live_state: string }>(base, 2000);
  const rows = s.data?.sessions ?? [];
  // Traffic: bytes moved since the previous poll by sessions open at both polls (a session that
  // appears does not count its earlier bytes), per second.
  const prev = useRef<{ at: number; bytes: Map<string, number> } | null>(null);
  const rateAt = useRef<{ key: number; rate: number }>({ key: -1, rate: 0 });
  if (s.data && rateAt.current.key !== s.updatedAt) {
    const bytes = new Map(rows.map((r) => [r.grant_id, r.bytes_up + r.bytes_down]));
    let moved = 0;
    if (prev.current) for (const [g, b] of bytes) moved += Math.max(0, b - (prev.current.bytes.get(g) ?? b));
    const dt = prev.current ? Math.max(0.5, (s.updatedAt - prev.current.at) / 1000) : 1;
    rateAt.current = { key: s.updatedAt, rate: moved / dt / 1024 };
    prev.current = { at: s.updatedAt, bytes };
  }
  const traffic = useSeries(s.data ? rateAt.current.rate : null, s.updatedAt);
  const open = useSeries(s.data ? rows.length : null, s.updatedAt);
  const terminate = async (r: OrgSession) => {
    const ok = await confirmAction(
      'Terminate session',
      <>
        Terminate the session of <strong>{r.user.email}</strong> to <strong>{r.resource.name}</strong>? Its connections are cut at once and its ticket is refused from now on.
      </>,
      'Terminate',
    );
    if (!ok) return;
    if (await attempt('Terminate', () => del(`${base}/${r.grant_id}`))) {
      toast(`Session of ${r.user.email} terminated`);
      s.reload();
    }
  };
  const cols: Column<OrgSession>[] = [
    { key: 'user', title: 'User', value: (r) => r.user.email },
    { key: 'resource', title: 'Resource', value: (r) => r.resource.name, render: (r) => <>{r.resource.name} <Badge kind="cap">{r.resource.protocol}</Badge></> },
    { key: 'since', title: 'Since', value: (r) => r.started_at, render: (r) => <span title={new Date(r.started_at * 1000).toISOString()}>{age(r.duration_seconds)}</span> },
    { key: 'connections', title: 'Connections' },
    { key: 'up', title: 'Sent', value: (r) => r.bytes_up, render: (r) => bytes(r.bytes_up) },
    { key: 'down', title: 'Received', value: (r) => r.bytes_down, render: (r) => bytes(r.bytes_down) },
    {
      key: 'a',
      title: '',
      value: () => '',
      render: (r) => (
        <button class="danger" data-testid={`terminate-${r.user.email}`} onClick={() => terminate(r)}>
          Terminate…
        </button>
      ),
    },
  ];
  return (
    <div>
      <h2>Active sessions</h2>
      <div class="charts">
        <Sparkline values={open} label="Open sessions" />
        <Sparkline values={traffic} label="Traffic (all sessions)" unit=" KiB/s" />
      </div>
      <PollState poll={s}>
        {s.data?.live_state === 'unavailable' ? <div class="error">Live state is unavailable: open sessions cannot be listed right now.</div> : null}
        <Table rows={rows} columns={cols} rowKey={(r) => r.grant_id} empty="No open sessions." testid="sessions-table" initialSort="since" />
      </PollState>
    </div>
  );
}

// ---------------- access points ----------------

// Where the organization's users enter the fabric (client ingress host:port) and which egress
// pools its resources may leave through. No topology: no node, relay or route.
export function OrgAccessPointsPage(props: { slug: string }) {
  const ap = usePoll<{ entry_points: { endpoint: string; status: string }[]; egress_pools: { name: string; description: string; status: string }[] }>(
    `/orgs/${enc(props.slug)}/access-points`,
    5000,
  );
  const statusBadge = (st: string) => <Badge kind={st === 'online' || st === 'available' ? 'online' : st === 'unassigned' ? 'stale' : 'offline'}>{st}</Badge>;
  return (
    <div>
      <h2>Entry and egress points</h2>
      <PollState poll={ap}>
        <h3>Entry points</h3>
        <Table
          rows={ap.data?.entry_points ?? []}
          columns={[
            { key: 'endpoint', title: 'Client ingress (host:port)', render: (r) => <code>{r.endpoint}</code> },
            { key: 'status', title: 'Status', render: (r) => statusBadge(r.status) },
          ]}
          rowKey={(r) => r.endpoint}
          empty="No entry point serves this organization yet."
          testid="entry-points-table"
        />
        <h3>Egress pools</h3>
        <Table
          rows={ap.data?.egress_pools ?? []}
          columns={[
            { key: 'name', title: 'Pool' },
            { key: 'description', title: 'Description' },
            { key: 'status', title: 'Status', render: (r) => statusBadge(r.status) },
          ]}
          rowKey={(r) => r.name}
          empty="No egress pools for this organization."
          testid="egress-pools-table"
        />
      </PollState>
    </div>
  );
}
