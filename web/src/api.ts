// Thin client of the rap-control HTTPS API (docs/API.md). The session token lives in
// sessionStorage (gone with the tab); every error is an ApiError with the server's code.

export class ApiError extends Error {
  constructor(
    public status: number,
    public code: string,
    message: string,
  ) {
    super(message);
  }
}

const TOKEN_KEY = 'rap.session';

export function getToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(t: string | null) {
  if (t) sessionStorage.setItem(TOKEN_KEY, t);
  else sessionStorage.removeItem(TOKEN_KEY);
}

type Listener = () => void;
const unauthorizedListeners: Listener[] = [];
export function onUnauthorized(l: Listener) {
  unauthorizedListeners.push(l);
}

export async function api<T = any>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = {};
  const token = getToken();
  if (token) headers['Authorization'] = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(`/api/v1${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
    });
  } catch (e) {
    throw new ApiError(0, 'network', 'rap-control is not reachable');
  }
  let data: any = null;
  const text = await res.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const code = data?.error?.code ?? `http_${res.status}`;
    const message = data?.error?.message ?? res.statusText;
    if (res.status === 401 && code === 'invalid_token' && token) {
      setToken(null);
      unauthorizedListeners.forEach((l) => l());
    }
    throw new ApiError(res.status, code, message);
  }
  return data as T;
}

export const get = <T = any>(p: string) => api<T>('GET', p);
export const post = <T = any>(p: string, b?: unknown) => api<T>('POST', p, b ?? {});
export const put = <T = any>(p: string, b: unknown) => api<T>('PUT', p, b);
export const del = <T = any>(p: string, b?: unknown) => api<T>('DELETE', p, b);

// ---- API shapes used by the console (subset) ----

export interface Me {
  user: { id: string; email: string; is_platform_owner: boolean };
  roles: string[];
  orgs: { slug: string; name: string; role: string }[];
  totp_enabled: boolean;
  token: { kind: string; elevated: boolean; elevated_until: string | null };
  is_platform_admin?: boolean;
}

export interface Role {
  role: string;
  org: string | null;
}

export interface CompactNode {
  id: string;
  cluster: string;
  name: string;
  hostname: string | null;
  status: 'active' | 'revoked';
  ownership: string;
  org: string | null;
  group_id: string | null;
  agent_version: string | null;
  last_heartbeat_at: string | null;
  heartbeat_age_seconds: number | null;
  health: 'online' | 'stale' | 'offline';
  capabilities: string[] | null;
  load: { cpu_permille?: number; memory_kib?: number; open_sessions?: number } | null;
  partition_state: string | null;
  roles: Role[];
  workloads: { desired: number; running: number };
  certificate_not_after: string | null;
}

export interface NodeGroup {
  id: string;
  name: string;
  parent_id: string | null;
  cluster: string;
}

export interface JoinRequest {
  id: string;
  cluster: string;
  public_key: string;
  facts: Record<string, unknown>;
  capabilities: string[];
  status: string;
  node_id: string | null;
  reason: string | null;
  created_at: string;
  decided_at: string | null;
  decided_by: string | null;
  join_token_id: string | null;
}

export const ROLES = [
  'entry-node',
  'relay-node',
  'exit-node',
  'rdp-worker',
  'vnc-worker',
  'vpn-exit',
  'vpn-connector',
  'file-storage-cache',
  'update-cache',
  'video-relay',
  'admin-web-ingress',
  'config-storage',
];

export const CAPABILITIES = [
  'can_accept_client_ingress',
  'can_accept_node_ingress',
  'can_route_mesh',
  'can_egress_internet',
  'can_egress_private_network',
  'can_run_rdp_worker',
  'can_run_vnc_worker',
  'can_run_vpn_exit',
  'can_run_vpn_connector',
  'can_run_tcp_exit',
  'can_run_file_cache',
  'can_run_update_cache',
  'can_run_video_relay',
  'can_store_config',
];
