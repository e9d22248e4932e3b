// RAP web console: sign-in (password + TOTP), then the platform owner console or, for
// organization admins, the organization panel.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import './style.css';
import { ApiError, Me, get, getToken, onUnauthorized, post, setToken } from './api';
import {
  DialogHost,
  ErrorBox,
  Link,
  ToastHost,
  attempt,
  highRisk,
  isStaff,
  navigate,
  session,
  setSession,
  toast,
  usePath,
} from './ui';
import {
  AlertsPage,
  AuditPage,
  ClusterDetailPage,
  ClustersPage,
  JoinRequestsPage,
  NodeDetailPage,
  NodesPage,
  OverviewPage,
  RolesPage,
  TopologyPage,
  TrustPage,
  WorkloadsPage,
} from './platform';
import { OrgAccessPointsPage, OrgAuditPage, OrgPeoplePage, OrgPoliciesPage, OrgResourcesPage, OrgSessionsPage, OrgStatusPage } from './org';

interface SessionInfo {
  me: Me;
  staff: boolean;
}

async function loadSession(): Promise<SessionInfo> {
  const me = await get<Me>('/me');
  const s = await get<{ platform_staff: boolean; platform_admin: boolean }>('/console/session');
  me.is_platform_admin = s.platform_admin;
  setSession(me);
  return { me, staff: s.platform_staff || isStaff(me) };
}

function Login(props: { onIn: (s: SessionInfo) => void }) {
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [code, setCode] = useState('');
  const [needCode, setNeedCode] = useState(false);
  const [err, setErr] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  return (
    <div class="login">
      <form
        data-testid="login-form"
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setErr(null);
          try {
            const body: Record<string, string> = { email, password };
            if (code) body.totp_code = code;
            const r = await post<{ token: string }>('/login', body);
            setToken(r.token);
            props.onIn(await loadSession());
          } catch (x) {
            const ax = x as ApiError;
            if (ax.code === 'totp_required') setNeedCode(true);
            setErr(ax);
          } finally {
            setBusy(false);
          }
        }}
      >
        <h1>RAP console</h1>
        <label>
          Email
          <input name="email" type="email" autoComplete="username" value={email} onInput={(e) => setEmail((e.target as HTMLInputElement).value)} required autoFocus />
        </label>
        <label>
          Password
          <input name="password" type="password" autoComplete="current-password" value={password} onInput={(e) => setPassword((e.target as HTMLInputElement).value)} required />
        </label>
        <label>
          Authenticator code {needCode ? <strong>(required)</strong> : <span class="muted">(if two-factor is enabled)</span>}
          <input name="totp" inputMode="numeric" autoComplete="one-time-code" pattern="[0-9]{6}" maxLength={6} value={code} onInput={(e) => setCode((e.target as HTMLInputElement).value)} required={needCode} />
        </label>
        <ErrorBox error={err} />
        <button class="primary" type="submit" disabled={busy}>
          Sign in
        </button>
      </form>
    </div>
  );
}

function AccountPage(props: { info: SessionInfo; refresh: () => void }) {
  const me = props.info.me;
  const [enroll, setEnroll] = useState<{ secret_base32: string; otpauth_uri: string } | null>(null);
  const [code, setCode] = useState('');
  return (
    <div>
      <h2>Account</h2>
      <dl>
        <dt>email</dt>
        <dd>{me.user.email}</dd>
        <dt>platform role</dt>
        <dd>{me.user.is_platform_owner ? 'platform owner' : me.is_platform_admin ? 'platform admin' : 'none'}</dd>
        <dt>organizations</dt>
        <dd>{me.orgs.map((o) => `${o.slug} (${o.role})`).join(', ') || 'none'}</dd>
        <dt>two-factor (TOTP)</dt>
        <dd data-testid="totp-state">{me.totp_enabled ? 'enabled' : 'not enabled'}</dd>
      </dl>
      {!me.totp_enabled && !enroll ? (
        <button
          class="primary"
          onClick={async () => {
            let r: any = null;
            if (await attempt('Enroll TOTP', async () => (r = await highRisk('Enrolling a second factor.', () => post('/me/totp/enroll', {}))))) setEnroll(r);
          }}
        >
          Enable two-factor…
        </button>
      ) : null}
      {enroll ? (
        <div class="copy-once">
          <p>Add this secret to your authenticator app (shown once), then enter a code to confirm:</p>
          <code class="wrap">{enroll.secret_base32}</code>
          <p class="muted small">
            <code class="wrap">{enroll.otpauth_uri}</code>
          </p>
          <form
            class="inline-form"
            onSubmit={async (e) => {
              e.preventDefault();
              if (await attempt('Confirm TOTP', () => post('/me/totp/confirm', { code }))) {
                toast('Two-factor enabled');
                setEnroll(null);
                props.refresh();
              }
            }}
          >
            <input inputMode="numeric" maxLength={6} value={code} onInput={(e) => setCode((e.target as HTMLInputElement).value)} required />
            <button class="primary">Confirm</button>
          </form>
        </div>
      ) : null}
    </div>
  );
}

function Forbidden() {
  return (
    <div class="forbidden" data-testid="forbidden">
      <h2>403 — Forbidden</h2>
      <p>This page is for platform staff only.</p>
    </div>
  );
}

const PLATFORM_NAV: [string, string][] = [
  ['/overview', 'Overview'],
  ['/clusters', 'Clusters'],
  ['/topology', 'Topology'],
  ['/nodes', 'Nodes'],
  ['/join-requests', 'Join requests'],
  ['/roles', 'Role assignments'],
  ['/workloads', 'Workloads'],
  ['/alerts', 'Health and alerts'],
  ['/audit', 'Audit'],
  ['/trust', 'Trust'],
];

// Pages of the organization admin panel, under /org/{slug}/ (after its Status page).
const ORG_NAV: [string, string][] = [
  ['resources', 'Resources'],
  ['people', 'Users and groups'],
  ['policies', 'Policies'],
  ['sessions', 'Sessions'],
  ['access', 'Entry and egress'],
  ['audit', 'Audit'],
];

function Shell(props: { info: SessionInfo; signOut: () => void; refresh: () => void }) {
  const path = usePath();
  const { me, staff } = props.info;
  const adminOrgs = me.orgs.filter((o) => o.role === 'org_admin');
  const seg = path.split('/').filter(Boolean).map(decodeURIComponent);
  useEffect(() => {
    if (path === '/' || path === '/login') {
      if (staff) navigate('/overview');
      else if (adminOrgs.length) navigate(`/org/${encodeURIComponent(adminOrgs[0].slug)}`);
      else navigate('/account');
    }
  }, [path]);
  let page: any = null;
  const platform = (p: any) => (staff ? p : <Forbidden />);
  switch (seg[0]) {
    case 'overview':
      page = platform(<OverviewPage />);
      break;
    case 'clusters':
      page = platform(seg[1] ? <ClusterDetailPage slug={seg[1]} /> : <ClustersPage />);
      break;
    case 'topology':
      page = platform(<TopologyPage />);
      break;
    case 'nodes':
      page = platform(seg[2] ? <NodeDetailPage cluster={seg[1]} id={seg[2]} /> : <NodesPage />);
      break;
    case 'join-requests':
      page = platform(<JoinRequestsPage />);
      break;
    case 'roles':
      page = platform(<RolesPage />);
      break;
    case 'workloads':
      page = platform(<WorkloadsPage />);
      break;
    case 'alerts':
      page = platform(<AlertsPage />);
      break;
    case 'audit':
      page = platform(<AuditPage />);
      break;
    case 'trust':
      page = platform(<TrustPage />);
      break;
    case 'account':
      page = <AccountPage info={props.info} refresh={props.refresh} />;
      break;
    case 'org': {
      const slug = seg[1] ?? '';
      const mine = staff || adminOrgs.some((o) => o.slug === slug);
      if (!mine) page = <Forbidden />;
      else if (seg[2] === 'resources') page = <OrgResourcesPage slug={slug} />;
      else if (seg[2] === 'people') page = <OrgPeoplePage slug={slug} />;
      else if (seg[2] === 'policies') page = <OrgPoliciesPage slug={slug} />;
      else if (seg[2] === 'audit') page = <OrgAuditPage slug={slug} />;
      else if (seg[2] === 'sessions') page = <OrgSessionsPage slug={slug} />;
      else if (seg[2] === 'access') page = <OrgAccessPointsPage slug={slug} />;
      else page = <OrgStatusPage slug={slug} />;
      break;
    }
    default:
      page = <div class="empty">Not found.</div>;
  }
  const active = (href: string) => (path === href || path.startsWith(href + '/') ? 'active' : '');
  return (
    <div class="shell">
      <nav class="side">
        <div class="brand">RAP</div>
        {staff ? (
          <>
            <div class="nav-title">Platform</div>
            {PLATFORM_NAV.map(([href, label]) => (
              <Link href={href} class={active(href)}>
                {label}
              </Link>
            ))}
          </>
        ) : null}
        {(staff ? me.orgs : adminOrgs).map((o) => (
          <>
            <div class="nav-title">Org {o.slug}</div>
            <Link href={`/org/${encodeURIComponent(o.slug)}`} class={path === `/org/${o.slug}` ? 'active' : ''}>
              Status
            </Link>
            {ORG_NAV.map(([sub, label]) => (
              <Link href={`/org/${encodeURIComponent(o.slug)}/${sub}`} class={active(`/org/${o.slug}/${sub}`)}>
                {label}
              </Link>
            ))}
          </>
        ))}
        <div class="nav-title">You</div>
        <Link href="/account" class={active('/account')}>
          {me.user.email}
        </Link>
        <a href="#" onClick={(e) => { e.preventDefault(); props.signOut(); }} data-testid="sign-out">
          Sign out
        </a>
      </nav>
      <main>{page}</main>
    </div>
  );
}

function App() {
  const [info, setInfo] = useState<SessionInfo | null>(null);
  const [checking, setChecking] = useState(!!getToken());
  const refresh = () =>
    loadSession()
      .then(setInfo)
      .catch(() => setInfo(null));
  useEffect(() => {
    onUnauthorized(() => {
      setSession(null);
      setInfo(null);
    });
    if (getToken()) refresh().finally(() => setChecking(false));
  }, []);
  const signOut = async () => {
    try {
      await post('/logout');
    } catch {
      /* token already invalid */
    }
    setToken(null);
    setSession(null);
    setInfo(null);
    navigate('/login');
  };
  if (checking) return <div class="loading">Loading…</div>;
  return (
    <>
      {info && session() ? (
        <Shell info={info} signOut={signOut} refresh={refresh} />
      ) : (
        <Login
          onIn={(s) => {
            setInfo(s);
            if (location.pathname === '/login' || location.pathname === '/') navigate(s.staff ? '/overview' : '/');
          }}
        />
      )}
      <DialogHost />
      <ToastHost />
    </>
  );
}

render(<App />, document.getElementById('app')!);
