// How a journey node looks on the canvas: kind, id, a summary of its settings, its server
// validation errors, live numbers (a message node's suppressed and failed sends too, and a
// warning when they look wrong), an input on top and one labelled output per edge name.
import { useEffect } from 'react';
import { Handle, Position, useUpdateNodeInternals, type NodeProps } from '@xyflow/react';
import { sendWarning } from '../lib/nodeHealth';
import type { SimBadge } from '../lib/simulate';

export interface NodeError {
  code: string;
  message: string;
  node?: string | null;
  field?: string | null;
}

export interface NodeStats {
  entered: number;
  waiting: number;
  converted: number;
  sent: number;
  opened: number;
  clicked: number;
  delivered?: number;
  bounced?: number;
  failed?: number;
  suppressed?: number;
}

export interface NodeView {
  kind: string;
  label: string;
  settings: Record<string, unknown>;
  outputs: string[];
  errors: NodeError[];
  stats?: NodeStats;
  /** What a simulation of the draft predicts at this node. */
  simulated?: SimBadge;
  [key: string]: unknown;
}

export function summary(settings: Record<string, unknown>): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(settings)) {
    if (out.length >= 2) break;
    if (typeof v === 'string' && v !== '') out.push(`${k}: ${v}`);
    else if (typeof v === 'number' || typeof v === 'boolean') out.push(`${k}: ${v}`);
  }
  return out;
}

export function JourneyNode({ id, data, selected }: NodeProps) {
  const d = data as NodeView;
  const update = useUpdateNodeInternals();
  const outputsKey = d.outputs.join('\u0000');
  useEffect(() => update(id), [id, outputsKey, update]);
  const isMessage = 'template' in d.settings;
  const warning = isMessage && d.stats ? sendWarning(d.stats) : null;
  return (
    <div className={`jnode${selected ? ' selected' : ''}${d.errors.length ? ' invalid' : ''}${warning ? ' suspect' : ''}`} data-testid={`node-${id}`} data-kind={d.kind}>
      <Handle type="target" position={Position.Top} id="in" data-testid={`in-${id}`} className="handle-in" />
      <div className="jnode-head">
        <span className="jnode-kind">{d.label}</span>
        {d.errors.length > 0 && (
          <span className="jnode-badge" title={d.errors.map((e) => e.message).join('\n')}>
            {d.errors.length} error{d.errors.length > 1 ? 's' : ''}
          </span>
        )}
        {warning && (
          <span className="jnode-warning" title={warning} aria-label={`Warning: ${warning}`} role="img" data-testid={`warning-${id}`}>
            ⚠
          </span>
        )}
      </div>
      <div className="jnode-id">{id}</div>
      {summary(d.settings).map((s) => (
        <div className="jnode-summary" key={s}>
          {s}
        </div>
      ))}
      {d.errors.length > 0 && (
        <ul className="jnode-errors" data-testid={`errors-${id}`}>
          {d.errors.slice(0, 3).map((e, i) => (
            <li key={i}>
              {e.field ? <code>{e.field}</code> : null} {e.message}
            </li>
          ))}
        </ul>
      )}
      {d.stats && (
        <div className="jnode-stats" data-testid={`stats-${id}`}>
          <Stat id={id} name="entered" value={d.stats.entered} />
          <Stat id={id} name="waiting" value={d.stats.waiting} />
          <Stat id={id} name="converted" value={d.stats.converted} />
          {isMessage && (
            <>
              <Stat id={id} name="sent" value={d.stats.sent} />
              {d.stats.delivered !== undefined && <Stat id={id} name="delivered" value={d.stats.delivered} />}
              <Stat id={id} name="opened" value={d.stats.opened} />
              <Stat id={id} name="clicked" value={d.stats.clicked} />
              <Stat id={id} name="suppressed" value={d.stats.suppressed ?? 0} alert={(d.stats.suppressed ?? 0) > 0} />
              <Stat id={id} name="failed" value={d.stats.failed ?? 0} alert={(d.stats.failed ?? 0) > 0} />
              {(d.stats.bounced ?? 0) > 0 && <Stat id={id} name="bounced" value={d.stats.bounced ?? 0} alert />}
            </>
          )}
        </div>
      )}
      {d.simulated && (
        <div className="jnode-stats jnode-sim" data-testid={`sim-${id}`} title="Predicted by the simulation of the draft">
          <span className="stat" data-testid={`sim-${id}-entered`} data-value={d.simulated.entered}>
            ≈ <b>{d.simulated.entered}</b> entered
          </span>
          {d.simulated.sends && (
            <span className="stat" data-testid={`sim-${id}-sent`} data-value={d.simulated.sent}>
              <b>{d.simulated.sent}</b> sent
            </span>
          )}
          {d.simulated.converted > 0 && (
            <span className="stat" data-testid={`sim-${id}-converted`} data-value={d.simulated.converted}>
              <b>{d.simulated.converted}</b> converted
            </span>
          )}
        </div>
      )}
      <div className="jnode-outputs">
        {d.outputs.map((o, i) => {
          const left = `${((i + 1) * 100) / (d.outputs.length + 1)}%`;
          return (
            <div key={o} className="jnode-output" style={{ left }}>
              <span className="jnode-output-label">{o}</span>
              <Handle type="source" position={Position.Bottom} id={o} style={{ left: '50%' }} data-testid={`out-${id}-${o}`} className="handle-out" />
            </div>
          );
        })}
      </div>
    </div>
  );
}

function Stat({ id, name, value, alert = false }: { id: string; name: string; value: number; alert?: boolean }) {
  return (
    <span className={`stat${alert ? ' stat-alert' : ''}`} data-testid={`stat-${id}-${name}`} data-value={value}>
      <b>{value}</b> {name}
    </span>
  );
}
