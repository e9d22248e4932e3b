// Organization admin panel: a tenant-safe projection of one organization (resources, users and
// groups, policies, its audit, safe status). It calls only /api/v1/orgs/{slug}/... and
// /api/v1/audit?org=: never nodes, relays, routes, certificates or other tenants.
import { useState } from 'preact/hooks';
import { del, post } from './api';
import { Badge, Card, Column, Empty, PollState, Table, attempt, confirmAction, highRisk, toast, usePoll } from './ui';
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
