// Live topology map of one cluster (platform staff only): the cluster, its node group tree, every
// node as a dot coloured by health, the live fabric sessions between nodes as edges coloured by
// route health (RTT, jitter, retransmits measured on the session) and the relays in use (nodes
// relaying routes right now, ringed). Data: /console/nodes, /clusters/{c}/node-groups and
// /clusters/{c}/fabric (all platform-staff only).
import { CompactNode, NodeGroup } from './api';
import { navigate } from './ui';

export interface FabricSession {
  a: string;
  b: string;
  rtt_ms: number | null;
  jitter_ms: number | null;
  retransmits_per_s: number | null;
  health: 'good' | 'degraded' | 'bad' | 'unknown';
}
export interface FabricView {
  sessions: FabricSession[];
  relays: { node: string; name: string; relayed_routes: number }[];
}

function fmt(v: number | null, unit: string): string {
  return v === null || v === undefined ? '—' : `${Math.round(v * 10) / 10}${unit}`;
}

const BOX_W = 230;
const COL_W = 290;
const DOT = 16;
const PER_ROW = 13;
const NAMED_MAX = 8; // boxes with at most this many nodes list them by name

interface Box {
  id: string;
  label: string;
  depth: number;
  x: number;
  y: number;
  h: number;
  nodes: CompactNode[];
  parent: string | null;
}

function boxHeight(n: number): number {
  if (n <= NAMED_MAX) return 30 + Math.max(1, n) * 18;
  return 30 + Math.ceil(n / PER_ROW) * DOT + 8;
}

export function TopologyMap(props: { cluster: string; nodes: CompactNode[]; groups: NodeGroup[]; fabric?: FabricView | null }) {
  const active = props.nodes.filter((n) => n.status === 'active');
  const byGroup = new Map<string | null, CompactNode[]>();
  for (const n of active) {
    const k = n.group_id && props.groups.some((g) => g.id === n.group_id) ? n.group_id : null;
    if (!byGroup.has(k)) byGroup.set(k, []);
    byGroup.get(k)!.push(n);
  }
  const boxes: Box[] = [];
  let cursor = 10;
  const place = (parent: string | null, depth: number, guard: number) => {
    if (guard > 12) return;
    const kids = props.groups.filter((g) => g.parent_id === parent).sort((a, b) => a.name.localeCompare(b.name));
    for (const g of kids) {
      const nodes = byGroup.get(g.id) ?? [];
      const h = boxHeight(nodes.length);
      boxes.push({ id: g.id, label: g.name, depth, x: 20 + depth * COL_W, y: cursor, h, nodes, parent: parent ?? 'root' });
      cursor += h + 14;
      place(g.id, depth + 1, guard + 1);
    }
  };
  place(null, 1, 0);
  const loose = byGroup.get(null) ?? [];
  if (loose.length || boxes.length === 0) {
    const h = boxHeight(loose.length);
    boxes.push({ id: 'ungrouped', label: '(no group)', depth: 1, x: 20 + COL_W, y: cursor, h, nodes: loose, parent: 'root' });
    cursor += h + 14;
  }
  const height = Math.max(cursor, 80);
  const rootY = Math.max(10, Math.min(height / 2 - 25, 200));
  const maxDepth = Math.max(1, ...boxes.map((b) => b.depth));
  const width = 20 + (maxDepth + 1) * COL_W;
  const byId = new Map(boxes.map((b) => [b.id, b]));
  const online = active.filter((n) => n.health === 'online').length;
  // Where each node is drawn (for the session edges).
  const pos = new Map<string, { x: number; y: number }>();
  for (const b of boxes)
    b.nodes.forEach((n, i) =>
      pos.set(n.id, b.nodes.length <= NAMED_MAX ? { x: b.x + 16, y: b.y + 38 + i * 18 } : { x: b.x + 12 + (i % PER_ROW) * DOT, y: b.y + 36 + Math.floor(i / PER_ROW) * DOT }),
    );
  const relaying = new Map((props.fabric?.relays ?? []).map((r) => [r.node, r.relayed_routes]));
  const names = new Map(active.map((n) => [n.id, n.name]));
  const sessions = (props.fabric?.sessions ?? []).filter((s) => pos.has(s.a) && pos.has(s.b));
  return (
    <div class="topology" data-testid={`topology-${props.cluster}`}>
      <svg width={width} height={height} viewBox={`0 0 ${width} ${height}`} role="img" aria-label={`topology of cluster ${props.cluster}`}>
        {boxes.map((b) => {
          const p = b.parent === 'root' ? { x: 20 + 160, y: rootY + 25 } : (() => {
            const pb = byId.get(b.parent!);
            return pb ? { x: pb.x + BOX_W, y: pb.y + 15 } : { x: 180, y: rootY + 25 };
          })();
          return <path class="edge" d={`M${p.x},${p.y} C${p.x + 50},${p.y} ${b.x - 50},${b.y + 15} ${b.x},${b.y + 15}`} />;
        })}
        <g data-testid={`fabric-sessions-${props.cluster}`}>
          {sessions.map((s) => {
            const a = pos.get(s.a)!;
            const b = pos.get(s.b)!;
            // Nodes in one column: bow the edge out to the left so it stays visible.
            const bow = Math.abs(a.x - b.x) < 40 ? -Math.min(200, 70 + Math.abs(a.y - b.y) / 2) : 0;
            return (
              <path class={`session s-${s.health}`} data-health={s.health} d={`M${a.x},${a.y} Q${(a.x + b.x) / 2 + bow},${(a.y + b.y) / 2} ${b.x},${b.y}`}>
                <title>{`${names.get(s.a)} ↔ ${names.get(s.b)}: ${s.health} · RTT ${fmt(s.rtt_ms, ' ms')} · jitter ${fmt(s.jitter_ms, ' ms')} · retransmits ${fmt(s.retransmits_per_s, '/s')}`}</title>
              </path>
            );
          })}
        </g>
        {[...relaying.keys()].filter((id) => pos.has(id)).map((id) => (
          <circle class="relay-ring" cx={pos.get(id)!.x} cy={pos.get(id)!.y} r={9}>
            <title>{`${names.get(id)} relays ${relaying.get(id)} routes`}</title>
          </circle>
        ))}
        <g>
          <rect class="root" x={20} y={rootY} width={160} height={50} rx={8} />
          <text x={30} y={rootY + 21} class="root-label">
            {props.cluster}
          </text>
          <text x={30} y={rootY + 40} class="small-label">
            {online}/{active.length} online
          </text>
        </g>
        {boxes.map((b) => (
          <g>
            <rect class="group" x={b.x} y={b.y} width={BOX_W} height={b.h} rx={6} />
            <text x={b.x + 8} y={b.y + 19} class="group-label">
              {b.label} ({b.nodes.length})
            </text>
            {b.nodes.length <= NAMED_MAX
              ? b.nodes.map((n, i) => (
                  <g class="node" onClick={() => navigate(`/nodes/${encodeURIComponent(n.cluster)}/${n.id}`)}>
                    <title>{`${n.name}: ${n.health}, ${n.roles.map((r) => r.role).join(', ') || 'no roles'}`}</title>
                    <circle cx={b.x + 16} cy={b.y + 38 + i * 18} r={6} class={`dot h-${n.health}`} />
                    <text x={b.x + 28} y={b.y + 42 + i * 18} class="node-label">
                      {n.name}
                      {n.roles.length ? ` · ${n.roles.map((r) => r.role).join(',')}` : ''}
                    </text>
                  </g>
                ))
              : b.nodes.map((n, i) => (
                  <circle
                    class={`dot node h-${n.health}`}
                    cx={b.x + 12 + (i % PER_ROW) * DOT}
                    cy={b.y + 36 + Math.floor(i / PER_ROW) * DOT}
                    r={5}
                    onClick={() => navigate(`/nodes/${encodeURIComponent(n.cluster)}/${n.id}`)}
                  >
                    <title>{`${n.name}: ${n.health}`}</title>
                  </circle>
                ))}
          </g>
        ))}
      </svg>
      <div class="legend">
        <span class="dot-l h-online" /> online <span class="dot-l h-stale" /> stale <span class="dot-l h-offline" /> offline · fabric sessions: <span class="line-l s-good" /> good{' '}
        <span class="line-l s-degraded" /> degraded <span class="line-l s-bad" /> bad <span class="line-l s-unknown" /> not measured · <span class="ring-l" /> relay in use
        {props.fabric ? (
          <span data-testid={`fabric-summary-${props.cluster}`}>
            {' '}
            · {sessions.length} sessions
            {relaying.size ? `; relays in use: ${[...relaying.entries()].map(([id, n]) => `${names.get(id) ?? id} (${n} routes)`).join(', ')}` : '; no relay in use'}
          </span>
        ) : null}
      </div>
    </div>
  );
}
