// Shared UI pieces: polling, sortable/filterable tables, dialogs (confirmation, step-up),
// navigation, empty and error states, small SVG charts.
import { ComponentChildren, JSX } from 'preact';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { ApiError, Me, get, post } from './api';

// ---------------- navigation ----------------

type RouteListener = (path: string) => void;
const routeListeners = new Set<RouteListener>();
export function navigate(path: string) {
  if (location.pathname + location.search !== path) history.pushState(null, '', path);
  routeListeners.forEach((l) => l(path));
}
window.addEventListener('popstate', () => routeListeners.forEach((l) => l(location.pathname)));
export function usePath(): string {
  const [p, setP] = useState(location.pathname);
  useEffect(() => {
    const l = () => setP(location.pathname);
    routeListeners.add(l);
    return () => {
      routeListeners.delete(l);
    };
  }, []);
  return p;
}
export function Link(props: { href: string; children: ComponentChildren; class?: string }) {
  return (
    <a
      href={props.href}
      class={props.class}
      onClick={(e) => {
        if (e.ctrlKey || e.metaKey || e.button !== 0) return;
        e.preventDefault();
        navigate(props.href);
      }}
    >
      {props.children}
    </a>
  );
}

// ---------------- polling ----------------

export interface Poll<T> {
  data: T | null;
  error: ApiError | null;
  loading: boolean;
  reload: () => void;
  updatedAt: number;
}

// Fetches `path` now and every `ms` (default 2 s) while mounted; keeps the last good data when a
// poll fails (the error is shown next to it).
export function usePoll<T = any>(path: string | null, ms = 2000, onData?: (d: T) => void): Poll<T> {
  return usePollFn<T>(path, () => get<T>(path as string), ms, onData);
}

// Like usePoll with any loader; `key` (null: idle) restarts it.
export function usePollFn<T = any>(key: string | null, load: () => Promise<T>, ms = 2000, onData?: (d: T) => void): Poll<T> {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [updatedAt, setUpdatedAt] = useState(0);
  const [tick, setTick] = useState(0);
  const cb = useRef(onData);
  cb.current = onData;
  const loader = useRef(load);
  loader.current = load;
  useEffect(() => {
    if (key === null) return;
    let stop = false;
    let timer: number | undefined;
    const run = async () => {
      try {
        const d = await loader.current();
        if (stop) return;
        setData(d);
        setError(null);
        setUpdatedAt(Date.now());
        cb.current?.(d);
      } catch (e) {
        if (stop) return;
        setError(e instanceof ApiError ? e : new ApiError(0, 'error', String(e)));
      }
      if (!stop && ms > 0) timer = window.setTimeout(run, ms);
    };
    run();
    return () => {
      stop = true;
      if (timer) clearTimeout(timer);
    };
  }, [key, ms, tick]);
  return { data, error, loading: data === null && error === null, reload: () => setTick((t) => t + 1), updatedAt };
}

// ---------------- states ----------------

export function ErrorBox(props: { error: ApiError | Error | null | undefined }) {
  if (!props.error) return null;
  const e = props.error as ApiError;
  return (
    <div class="error" role="alert">
      <strong>{e.status === 403 ? 'Forbidden' : 'Error'}</strong>: {e.message}
      {e.code ? <code> ({e.code})</code> : null}
    </div>
  );
}

export function Empty(props: { children: ComponentChildren }) {
  return <div class="empty">{props.children}</div>;
}

export function Loading() {
  return <div class="loading">Loading…</div>;
}

export function PollState(props: { poll: Poll<unknown>; children?: ComponentChildren }) {
  if (props.poll.error && props.poll.data === null) return <ErrorBox error={props.poll.error} />;
  if (props.poll.loading) return <Loading />;
  return (
    <>
      {props.poll.error ? <ErrorBox error={props.poll.error} /> : null}
      {props.children}
    </>
  );
}

export function Badge(props: { kind: string; children?: ComponentChildren; title?: string }) {
  return (
    <span class={`badge b-${props.kind}`} title={props.title}>
      {props.children ?? props.kind}
    </span>
  );
}

export function age(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined) return 'never';
  if (seconds < 60) return `${seconds}s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h ago`;
  return `${Math.floor(seconds / 86400)}d ago`;
}

export function Card(props: { title: string; value: ComponentChildren; sub?: ComponentChildren; kind?: string; testid?: string }) {
  return (
    <div class={`card ${props.kind ?? ''}`} data-testid={props.testid}>
      <div class="card-title">{props.title}</div>
      <div class="card-value">{props.value}</div>
      {props.sub ? <div class="card-sub">{props.sub}</div> : null}
    </div>
  );
}

// ---------------- tables ----------------

export interface Column<T> {
  key: string;
  title: string;
  value?: (row: T) => string | number | null | undefined; // sort + filter value
  render?: (row: T) => ComponentChildren;
  class?: string;
}

// A table that sorts by any column (click the header), filters by a free-text query over every
// column value, and pages (`pageSize` rows) so 1000+ rows stay fast.
export function Table<T>(props: {
  rows: T[];
  columns: Column<T>[];
  rowKey: (r: T) => string;
  empty?: ComponentChildren;
  filterPlaceholder?: string;
  pageSize?: number;
  initialSort?: string;
  testid?: string;
  toolbar?: ComponentChildren;
}) {
  const [sort, setSort] = useState<{ key: string; dir: 1 | -1 }>({ key: props.initialSort ?? props.columns[0].key, dir: 1 });
  const [q, setQ] = useState('');
  const [page, setPage] = useState(0);
  const pageSize = props.pageSize ?? 100;
  const valueOf = (c: Column<T>, r: T) => (c.value ? c.value(r) : (r as any)[c.key]);
  const filtered = useMemo(() => {
    const needle = q.trim().toLowerCase();
    let rows = props.rows;
    if (needle) {
      rows = rows.filter((r) =>
        props.columns.some((c) => {
          const v = valueOf(c, r);
          return v !== null && v !== undefined && String(v).toLowerCase().includes(needle);
        }),
      );
    }
    const col = props.columns.find((c) => c.key === sort.key);
    if (col) {
      rows = [...rows].sort((a, b) => {
        const va = valueOf(col, a);
        const vb = valueOf(col, b);
        if (va === vb) return 0;
        if (va === null || va === undefined) return 1;
        if (vb === null || vb === undefined) return -1;
        return (va < vb ? -1 : 1) * sort.dir;
      });
    }
    return rows;
  }, [props.rows, q, sort]);
  const pages = Math.max(1, Math.ceil(filtered.length / pageSize));
  const p = Math.min(page, pages - 1);
  const shown = filtered.slice(p * pageSize, (p + 1) * pageSize);
  return (
    <div class="table-wrap" data-testid={props.testid}>
      <div class="toolbar">
        <input
          class="filter"
          type="search"
          placeholder={props.filterPlaceholder ?? 'Filter…'}
          value={q}
          onInput={(e) => {
            setQ((e.target as HTMLInputElement).value);
            setPage(0);
          }}
        />
        {props.toolbar}
        <span class="muted">
          {filtered.length} of {props.rows.length}
        </span>
      </div>
      {filtered.length === 0 ? (
        <Empty>{props.rows.length === 0 ? props.empty ?? 'Nothing here yet.' : 'No row matches the filter.'}</Empty>
      ) : (
        <table>
          <thead>
            <tr>
              {props.columns.map((c) => (
                <th
                  class={`sortable ${c.class ?? ''}`}
                  onClick={() => setSort((s) => ({ key: c.key, dir: s.key === c.key ? (-s.dir as 1 | -1) : 1 }))}
                  aria-sort={sort.key === c.key ? (sort.dir === 1 ? 'ascending' : 'descending') : 'none'}
                >
                  {c.title}
                  {sort.key === c.key ? (sort.dir === 1 ? ' ▲' : ' ▼') : ''}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {shown.map((r) => (
              <tr key={props.rowKey(r)}>
                {props.columns.map((c) => (
                  <td class={c.class}>{c.render ? c.render(r) : String(valueOf(c, r) ?? '—')}</td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {pages > 1 ? (
        <div class="pager">
          <button disabled={p === 0} onClick={() => setPage(p - 1)}>
            ‹ Prev
          </button>
          <span>
            page {p + 1} / {pages}
          </span>
          <button disabled={p >= pages - 1} onClick={() => setPage(p + 1)}>
            Next ›
          </button>
        </div>
      ) : null}
    </div>
  );
}

// ---------------- session + dialogs ----------------

interface DialogState {
  kind: 'confirm' | 'stepup';
  title: string;
  message?: ComponentChildren;
  confirmLabel?: string;
  danger?: boolean;
  resolve: (ok: boolean) => void;
}

let setDialogGlobal: ((d: DialogState | null) => void) | null = null;
let meGlobal: Me | null = null;
let elevatedUntil = 0;

export function setSession(me: Me | null) {
  meGlobal = me;
  elevatedUntil = me?.token.elevated_until ? Date.parse(me.token.elevated_until) : 0;
}
export function session(): Me | null {
  return meGlobal;
}
export function isStaff(me: Me | null): boolean {
  return !!me && (me.user.is_platform_owner || me.roles.includes('platform_admin') || !!me.is_platform_admin);
}

// Asks the user to confirm a destructive action.
export function confirmAction(title: string, message: ComponentChildren, confirmLabel = 'Confirm'): Promise<boolean> {
  return new Promise((resolve) => setDialogGlobal?.({ kind: 'confirm', title, message, confirmLabel, danger: true, resolve }));
}

// Makes sure the session is stepped up (fresh password + second factor within the server's
// 10-minute elevation window) before a high-risk action; prompts when it is not.
export async function ensureStepUp(reason: string): Promise<boolean> {
  if (Date.now() < elevatedUntil - 5000) return true;
  return new Promise((resolve) => setDialogGlobal?.({ kind: 'stepup', title: 'Confirm it is you', message: reason, resolve }));
}

// Runs a high-risk action: step-up first, and once more if the server still says
// step_up_required (e.g. the window ended in between).
export async function highRisk<T>(reason: string, action: () => Promise<T>): Promise<T | null> {
  if (!(await ensureStepUp(reason))) return null;
  try {
    return await action();
  } catch (e) {
    if (e instanceof ApiError && e.code === 'step_up_required') {
      elevatedUntil = 0;
      if (!(await ensureStepUp(reason))) return null;
      return await action();
    }
    throw e;
  }
}

export function DialogHost() {
  const [d, setD] = useState<DialogState | null>(null);
  setDialogGlobal = setD;
  if (!d) return null;
  const close = (ok: boolean) => {
    setD(null);
    d.resolve(ok);
  };
  return (
    <div class="modal-backdrop" onKeyDown={(e) => e.key === 'Escape' && close(false)}>
      <div class="modal" role="dialog" aria-modal="true" aria-label={d.title}>
        <h3>{d.title}</h3>
        {d.kind === 'confirm' ? (
          <>
            <div class="modal-body">{d.message}</div>
            <div class="actions">
              <button onClick={() => close(false)}>Cancel</button>
              <button class="danger" data-testid="confirm-ok" onClick={() => close(true)} autoFocus>
                {d.confirmLabel}
              </button>
            </div>
          </>
        ) : (
          <StepUpForm reason={d.message} onDone={close} />
        )}
      </div>
    </div>
  );
}

function StepUpForm(props: { reason: ComponentChildren; onDone: (ok: boolean) => void }) {
  const [password, setPassword] = useState('');
  const [code, setCode] = useState('');
  const [err, setErr] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const totp = meGlobal?.totp_enabled ?? false;
  const submit = async (e: JSX.TargetedEvent<HTMLFormElement>) => {
    e.preventDefault();
    setBusy(true);
    try {
      const body: Record<string, string> = { password };
      if (code) body.totp_code = code;
      const r = await post<{ elevated_until: string }>('/auth/step-up', body);
      elevatedUntil = Date.parse(r.elevated_until);
      props.onDone(true);
    } catch (x) {
      setErr(x as ApiError);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form onSubmit={submit} data-testid="stepup-form">
      <p class="muted">{props.reason} This is a high-risk action: enter your password{totp ? ' and a fresh authenticator code' : ''}.</p>
      <label>
        Password
        <input type="password" name="stepup-password" autoComplete="current-password" value={password} onInput={(e) => setPassword((e.target as HTMLInputElement).value)} required autoFocus />
      </label>
      {totp ? (
        <label>
          Authenticator code
          <input name="stepup-totp" inputMode="numeric" pattern="[0-9]{6}" maxLength={6} value={code} onInput={(e) => setCode((e.target as HTMLInputElement).value)} required />
        </label>
      ) : (
        <p class="warn">Two-factor authentication is not enabled for this account (Account page).</p>
      )}
      <ErrorBox error={err} />
      <div class="actions">
        <button type="button" onClick={() => props.onDone(false)}>
          Cancel
        </button>
        <button class="primary" type="submit" disabled={busy}>
          Verify
        </button>
      </div>
    </form>
  );
}

// ---------------- toasts ----------------

let pushToast: ((t: string) => void) | null = null;
export function toast(t: string) {
  pushToast?.(t);
}
export function ToastHost() {
  const [items, setItems] = useState<{ id: number; t: string }[]>([]);
  pushToast = (t) => {
    const id = Date.now() + Math.random();
    setItems((xs) => [...xs, { id, t }]);
    setTimeout(() => setItems((xs) => xs.filter((x) => x.id !== id)), 4000);
  };
  return (
    <div class="toasts">
      {items.map((i) => (
        <div class="toast" key={i.id}>
          {i.t}
        </div>
      ))}
    </div>
  );
}

// Runs an async UI action, reporting failure as a toast; returns whether it succeeded.
export async function attempt(what: string, f: () => Promise<unknown>): Promise<boolean> {
  try {
    const r = await f();
    if (r === null) return false; // cancelled (dialog)
    return true;
  } catch (e) {
    const x = e as ApiError;
    toast(`${what} failed: ${x.message}${x.code ? ` (${x.code})` : ''}`);
    return false;
  }
}

// ---------------- charts ----------------

// A small line chart of the last samples (client-side, from polling).
export function Sparkline(props: { values: number[]; width?: number; height?: number; label: string; unit?: string; max?: number }) {
  const w = props.width ?? 220;
  const h = props.height ?? 48;
  const vs = props.values;
  const max = props.max ?? Math.max(1, ...vs);
  const pts = vs.map((v, i) => `${vs.length <= 1 ? 0 : (i / (vs.length - 1)) * w},${h - 2 - (v / max) * (h - 4)}`).join(' ');
  const last = vs.length ? vs[vs.length - 1] : null;
  return (
    <figure class="spark" aria-label={props.label}>
      <figcaption>
        {props.label}: <strong>{last === null ? '—' : `${Math.round(last * 10) / 10}${props.unit ?? ''}`}</strong>
      </figcaption>
      <svg width={w} height={h} viewBox={`0 0 ${w} ${h}`} role="img">
        <rect x="0" y="0" width={w} height={h} class="spark-bg" />
        {vs.length > 1 ? <polyline points={pts} class="spark-line" /> : null}
      </svg>
    </figure>
  );
}

// Keeps the last `n` samples of a value, appended each time `sample` changes identity.
export function useSeries(sample: number | null, key: unknown, n = 60): number[] {
  const ref = useRef<number[]>([]);
  const last = useRef<unknown>(undefined);
  if (sample !== null && key !== last.current) {
    last.current = key;
    ref.current = [...ref.current.slice(-(n - 1)), sample];
  }
  return ref.current;
}
