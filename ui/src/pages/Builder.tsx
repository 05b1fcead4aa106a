// The journey builder: a canvas of the draft, a palette generated from the server's schema, a
// side panel with the selected node's settings form (or the journey's), validation by the
// server as you edit, undo and redo, save, publish with a summary, pause and resume, and live
// numbers per node on a published journey.
import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import {
  Background,
  Controls,
  MiniMap,
  ReactFlow,
  ReactFlowProvider,
  applyEdgeChanges,
  applyNodeChanges,
  useNodesInitialized,
  useReactFlow,
  type Connection,
  type Edge,
  type EdgeChange,
  type Node,
  type NodeChange,
} from '@xyflow/react';
import { api, describe, ok, ServerError } from '../api/client';
import { ErrorBanner, Loading, StatusBadge } from '../components/common';
import { JourneyTabs } from '../components/JourneyTabs';
import { SimulateDialog } from '../components/SimulateDialog';
import { badgesByNode, type Prediction } from '../lib/simulate';
import { JourneyNode, type NodeError, type NodeStats, type NodeView } from '../components/JourneyNode';
import { SchemaForm } from '../components/SchemaForm';
import { canvasToDoc, connect, docToCanvas, freshId, removeItems, renameNode, type Canvas, type CanvasEdge, type CanvasNode, type JourneyDoc } from '../lib/graph';
import { canRedo, canUndo, push, redo, replace, start, undo, type History } from '../lib/history';
import { journeySchema } from '../lib/journeySchema';
import { layout } from '../lib/layout';
import { outputsOf } from '../lib/outputs';
import { initialSettings, journeySettingsSchema, nodeKinds, type NodeKindDef, type Schema } from '../lib/schema';
import { publishDiff, stable, templateUpdates, type NodeStat, type TemplateUpdate } from '../lib/diff';
import { Link } from '../router';

interface JourneyRow {
  id: string;
  name: string;
  status: string;
  live_version: number | null;
  draft: JourneyDoc;
  errors: NodeError[];
  valid: boolean;
}

const nodeTypes = { journey: JourneyNode };
const POLL_MS = 3000;
const KIND_MIME = 'application/x-waymark-kind';

export function Builder({ journeyId }: { journeyId: string }) {
  const [row, setRow] = useState<JourneyRow | null>(null);
  const [schema, setSchema] = useState<Schema | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let live = true;
    Promise.all([ok<JourneyRow>(api.GET('/v1/journeys/{id}', { params: { path: { id: journeyId } } })), journeySchema()])
      .then(([r, s]) => {
        if (!live) return;
        setRow(r);
        setSchema(s);
      })
      .catch((e) => live && setError(describe(e)));
    return () => {
      live = false;
    };
  }, [journeyId]);
  if (error)
    return (
      <div className="page">
        <ErrorBanner error={error} />
        <Link to="/journeys">Back to the journeys</Link>
      </div>
    );
  if (!row || !schema) return <Loading what="the journey" />;
  return (
    <ReactFlowProvider>
      <Editor initial={row} schema={schema} />
    </ReactFlowProvider>
  );
}

function initialCanvas(doc: JourneyDoc): Canvas {
  const canvas = docToCanvas(doc);
  const positioned = (doc.nodes ?? []).every((n) => n && typeof n === 'object' && 'position' in n);
  return positioned ? canvas : { ...canvas, nodes: layout(canvas.nodes, canvas.edges) };
}

function isTyping(target: EventTarget | null): boolean {
  const el = target as HTMLElement | null;
  if (!el) return false;
  return el.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(el.tagName);
}

function Editor({ initial, schema }: { initial: JourneyRow; schema: Schema }) {
  const flow = useReactFlow();
  const kinds = useMemo(() => nodeKinds(schema), [schema]);
  const kindByType = useMemo(() => new Map(kinds.map((k) => [k.type, k])), [kinds]);
  const [row, setRow] = useState(initial);
  const [hist, setHist] = useState<History<Canvas>>(() => start(initialCanvas(initial.draft)));
  const [errors, setErrors] = useState<NodeError[]>(initial.errors ?? []);
  const [savedKey, setSavedKey] = useState(() => stable(canvasToDoc(initialCanvas(initial.draft))));
  const [banner, setBanner] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [stats, setStats] = useState<Record<string, NodeStats> | null>(null);
  const [publishing, setPublishing] = useState(false);
  const [simulating, setSimulating] = useState(false);
  const [simulation, setSimulation] = useState<Prediction | null>(null);
  const simBadges = useMemo(() => (simulation ? badgesByNode(simulation) : null), [simulation]);
  const canvas = hist.present;
  const doc = useMemo(() => canvasToDoc(canvas), [canvas]);
  const docKey = useMemo(() => stable(doc), [doc]);
  const dirty = docKey !== savedKey;

  // Fit the whole journey in view once its nodes have their sizes (the `fitView` prop alone
  // may run before the custom nodes are measured).
  const measured = useNodesInitialized();
  const fitted = useRef((initial.draft.nodes ?? []).length === 0);
  useEffect(() => {
    if (measured && !fitted.current) {
      fitted.current = true;
      void flow.fitView({ padding: 0.2, maxZoom: 1 });
    }
  }, [measured, flow]);

  // Closing or reloading the tab with unsaved changes asks first.
  useEffect(() => {
    if (!dirty) return;
    const warn = (e: BeforeUnloadEvent) => e.preventDefault();
    window.addEventListener('beforeunload', warn);
    return () => window.removeEventListener('beforeunload', warn);
  }, [dirty]);

  // Server validation as the draft changes.
  useEffect(() => {
    const t = setTimeout(async () => {
      try {
        const r = await ok<{ errors: NodeError[] }>(api.POST('/v1/journeys/validate', { body: doc as never }));
        setErrors(r.errors ?? []);
      } catch (e) {
        if (e instanceof ServerError && e.status === 400) setErrors([{ code: e.code, message: e.message, field: e.field }]);
      }
    }, 400);
    return () => clearTimeout(t);
  }, [docKey]); // eslint-disable-line react-hooks/exhaustive-deps

  // Live numbers on a published journey.
  const published = row.live_version != null;
  useEffect(() => {
    if (!published) return;
    let stop = false;
    const poll = async () => {
      try {
        const r = await ok<{ nodes: Array<NodeStats & { node: string }> }>(api.GET('/v1/journeys/{id}/stats', { params: { path: { id: row.id } } }));
        if (!stop) setStats(Object.fromEntries(r.nodes.map((n) => [n.node, n])));
      } catch {
        // Shown again at the next poll; the canvas stays usable.
      }
    };
    void poll();
    const t = setInterval(poll, POLL_MS);
    return () => {
      stop = true;
      clearInterval(t);
    };
  }, [published, row.id]);

  const errorsByNode = useMemo(() => {
    const m = new Map<string, NodeError[]>();
    for (const e of errors) if (e.node) m.set(e.node, [...(m.get(e.node) ?? []), e]);
    return m;
  }, [errors]);
  const generalErrors = errors.filter((e) => !e.node || !canvas.nodes.some((n) => n.id === e.node));

  const rfNodes: Node[] = useMemo(
    () =>
      canvas.nodes.map((n) => {
        const kind = kindByType.get(n.data.kind);
        const view: NodeView = {
          kind: n.data.kind,
          label: kind?.label ?? n.data.kind,
          settings: n.data.settings,
          outputs: outputsOf(n.data.settings, kind?.outputs),
          errors: errorsByNode.get(n.id) ?? [],
          stats: stats?.[n.id],
          simulated: simBadges?.[n.id],
        };
        return { ...n, data: view } as Node;
      }),
    [canvas.nodes, kindByType, errorsByNode, stats, simBadges],
  );
  const rfEdges = canvas.edges as Edge[];

  const commit = useCallback((next: (c: Canvas) => Canvas, coalesce?: string) => setHist((h) => push(h, next(h.present), coalesce)), []);

  const onNodesChange = useCallback((changes: NodeChange[]) => {
    const relevant = changes.filter((c) => c.type !== 'remove');
    if (relevant.length === 0) return;
    setHist((h) => replace(h, { ...h.present, nodes: applyNodeChanges(relevant, h.present.nodes as unknown as Node[]) as unknown as CanvasNode[] }));
  }, []);
  const onEdgesChange = useCallback((changes: EdgeChange[]) => {
    const relevant = changes.filter((c) => c.type !== 'remove');
    if (relevant.length === 0) return;
    setHist((h) => replace(h, { ...h.present, edges: applyEdgeChanges(relevant, h.present.edges as Edge[]) as CanvasEdge[] }));
  }, []);
  const onConnect = useCallback(
    (c: Connection) => {
      if (!c.source || !c.target) return;
      commit((cv) => ({ ...cv, edges: connect(cv.edges, c.source, c.sourceHandle ?? 'next', c.target) }));
    },
    [commit],
  );

  const addNode = useCallback(
    (kind: NodeKindDef, position?: { x: number; y: number }) => {
      commit((cv) => {
        const id = freshId(kind.type, cv.nodes.map((n) => n.id));
        const center = flow.screenToFlowPosition({ x: window.innerWidth / 2, y: window.innerHeight / 2 });
        const node: CanvasNode = {
          id,
          type: 'journey',
          position: position ?? { x: center.x - 115 + cv.nodes.length * 12, y: center.y - 55 + cv.nodes.length * 12 },
          data: { kind: kind.type, settings: initialSettings(schema, kind) },
          selected: true,
        };
        return { ...cv, nodes: [...cv.nodes.map((n) => ({ ...n, selected: false })), node], edges: cv.edges.map((e) => ({ ...e, selected: false })) };
      });
    },
    [commit, flow, schema],
  );

  const deleteSelected = useCallback(() => {
    commit((cv) => removeItems(cv, new Set(cv.nodes.filter((n) => n.selected).map((n) => n.id)), new Set(cv.edges.filter((e) => e.selected).map((e) => e.id))));
  }, [commit]);

  // Keyboard: delete, undo, redo, select all.
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (isTyping(e.target) || publishing || simulating) return;
      const mod = e.ctrlKey || e.metaKey;
      const key = e.key.toLowerCase();
      if (e.key === 'Delete' || e.key === 'Backspace') {
        e.preventDefault();
        deleteSelected();
      } else if (mod && key === 'z' && !e.shiftKey) {
        e.preventDefault();
        setHist(undo);
      } else if (mod && ((key === 'z' && e.shiftKey) || key === 'y')) {
        e.preventDefault();
        setHist(redo);
      } else if (mod && key === 'a') {
        e.preventDefault();
        setHist((h) => replace(h, { ...h.present, nodes: h.present.nodes.map((n) => ({ ...n, selected: true })), edges: h.present.edges.map((ed) => ({ ...ed, selected: true })) }));
      }
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [deleteSelected, publishing, simulating]);

  const save = async (): Promise<boolean> => {
    setBusy(true);
    setBanner(null);
    try {
      const r = await ok<JourneyRow>(api.PUT('/v1/journeys/{id}', { params: { path: { id: row.id } }, body: doc as never }));
      setRow((old) => ({ ...old, ...r, draft: doc }));
      setErrors(r.errors ?? []);
      setSavedKey(docKey);
      setNotice('Draft saved.');
      return true;
    } catch (e) {
      setBanner(describe(e));
      return false;
    } finally {
      setBusy(false);
    }
  };

  const setStatus = async (action: 'pause' | 'resume') => {
    setBusy(true);
    setBanner(null);
    try {
      const path = action === 'pause' ? '/v1/journeys/{id}/pause' : '/v1/journeys/{id}/resume';
      const r = await ok<JourneyRow>(api.POST(path, { params: { path: { id: row.id } } }));
      setRow((old) => ({ ...old, status: r.status }));
      setNotice(action === 'pause' ? 'Paused: no new entries; contacts wait where they are.' : 'Resumed.');
    } catch (e) {
      setBanner(describe(e));
    } finally {
      setBusy(false);
    }
  };

  const selectedNodes = canvas.nodes.filter((n) => n.selected);
  const selected = selectedNodes.length === 1 ? selectedNodes[0] : null;

  return (
    <div className="builder">
      <div className="toolbar">
        <Link to="/journeys" className="muted">
          ← Journeys
        </Link>
        <h1 className="title">{String(canvas.meta.name ?? row.id)}</h1>
        <StatusBadge status={row.status} />
        <JourneyTabs journeyId={row.id} active="builder" />
        {row.live_version != null && <span className="muted">version {row.live_version} live</span>}
        {dirty ? <span className="dirty">unsaved changes</span> : <span className="muted">saved</span>}
        <span className="spacer" />
        <button onClick={() => setHist(undo)} disabled={!canUndo(hist)} title="Undo (Ctrl+Z)">
          Undo
        </button>
        <button onClick={() => setHist(redo)} disabled={!canRedo(hist)} title="Redo (Ctrl+Shift+Z)">
          Redo
        </button>
        <button
          onClick={() => {
            commit((cv) => ({ ...cv, nodes: layout(cv.nodes, cv.edges) }));
            setTimeout(() => flow.fitView({ padding: 0.2 }), 50);
          }}
        >
          Auto-layout
        </button>
        <button onClick={() => void save()} disabled={busy || !dirty}>
          Save draft
        </button>
        {row.status === 'live' && (
          <button onClick={() => void setStatus('pause')} disabled={busy}>
            Pause
          </button>
        )}
        {row.status === 'paused' && (
          <button onClick={() => void setStatus('resume')} disabled={busy}>
            Resume
          </button>
        )}
        {simulation && (
          <button onClick={() => setSimulation(null)} title="Take the predicted numbers off the canvas">
            Clear simulation
          </button>
        )}
        <button onClick={() => setSimulating(true)} disabled={busy} title="Predict what the draft would do, before publishing">
          Simulate…
        </button>
        <button className="primary" onClick={() => setPublishing(true)} disabled={busy || row.status === 'archived'}>
          Publish…
        </button>
      </div>
      <ErrorBanner error={banner} onClose={() => setBanner(null)} />
      {notice && (
        <div className="notice" role="status" onAnimationEnd={() => setNotice(null)}>
          {notice}
        </div>
      )}
      <div className="builder-body">
        <aside className="palette" aria-label="Node kinds">
          <h3>Nodes</h3>
          <p className="muted small">Drag onto the canvas, or click to add.</p>
          {kinds.map((k) => (
            <div
              key={k.type}
              className="palette-item"
              draggable
              role="button"
              tabIndex={0}
              data-testid={`palette-${k.type}`}
              title={k.description}
              onDragStart={(e) => {
                e.dataTransfer.setData(KIND_MIME, k.type);
                e.dataTransfer.effectAllowed = 'move';
              }}
              onClick={() => addNode(k)}
              onKeyDown={(e) => e.key === 'Enter' && addNode(k)}
            >
              {k.label}
            </div>
          ))}
        </aside>
        <div
          className="canvas"
          data-testid="canvas"
          onDragOver={(e) => {
            if (e.dataTransfer.types.includes(KIND_MIME)) {
              e.preventDefault();
              e.dataTransfer.dropEffect = 'move';
            }
          }}
          onDrop={(e) => {
            const type = e.dataTransfer.getData(KIND_MIME);
            const kind = kindByType.get(type);
            if (!kind) return;
            e.preventDefault();
            const p = flow.screenToFlowPosition({ x: e.clientX, y: e.clientY });
            addNode(kind, { x: p.x - 115, y: p.y - 20 });
          }}
        >
          <ReactFlow
            nodes={rfNodes}
            edges={rfEdges}
            nodeTypes={nodeTypes}
            onNodesChange={onNodesChange}
            onEdgesChange={onEdgesChange}
            onConnect={onConnect}
            onNodeDragStart={() => setHist((h) => push(h, { ...h.present }))}
            isValidConnection={(c) => c.source !== c.target}
            deleteKeyCode={null}
            selectionKeyCode="Shift"
            multiSelectionKeyCode={['Meta', 'Control']}
            fitView
            fitViewOptions={{ padding: 0.2, maxZoom: 1 }}
            minZoom={0.2}
            defaultEdgeOptions={{ type: 'smoothstep' }}
            proOptions={{ hideAttribution: true }}
          >
            <Background gap={16} />
            <Controls showInteractive={false} />
            <MiniMap pannable zoomable />
          </ReactFlow>
          {canvas.nodes.length === 0 && <div className="canvas-empty muted">Drag a node kind here to start, e.g. a trigger.</div>}
        </div>
        <aside className="panel" aria-label="Settings">
          {selected ? (
            <NodePanel
              key={selected.id}
              node={selected}
              kind={kindByType.get(selected.data.kind)}
              schema={schema}
              errors={errorsByNode.get(selected.id) ?? []}
              stats={stats?.[selected.id]}
              onChange={(settings, key) =>
                commit((cv) => ({ ...cv, nodes: cv.nodes.map((n) => (n.id === selected.id ? { ...n, data: { ...n.data, settings } } : n)) }), `${selected.id}:${key}`)
              }
              onRename={(to) => commit((cv) => renameNode(cv, selected.id, to))}
              onDelete={deleteSelected}
              taken={canvas.nodes.map((n) => n.id)}
            />
          ) : (
            <JourneyPanel
              schema={schema}
              meta={canvas.meta}
              selectedCount={selectedNodes.length}
              generalErrors={generalErrors}
              errorCount={errors.length}
              onChange={(meta, key) => commit((cv) => ({ ...cv, meta: { ...meta, id: cv.meta.id } }), `journey:${key}`)}
            />
          )}
        </aside>
      </div>
      {simulating && (
        <SimulateDialog
          journeyId={row.id}
          beforeRun={async () => !dirty || (await save())}
          result={simulation}
          onResult={setSimulation}
          onClose={() => setSimulating(false)}
        />
      )}
      {publishing && (
        <PublishDialog
          row={row}
          draft={doc}
          errors={errors}
          onClose={() => setPublishing(false)}
          onPublish={async () => {
            if (dirty && !(await save())) return false;
            try {
              const r = await ok<JourneyRow & { unchanged?: boolean }>(api.POST('/v1/journeys/{id}/publish', { params: { path: { id: row.id } }, body: {} }));
              setRow((old) => ({ ...old, status: r.status, live_version: r.live_version }));
              // The draft repeated the live version: the server made no new one.
              setNotice(r.unchanged ? `Nothing to publish: the draft is version ${r.live_version} as it stands.` : `Published version ${r.live_version}.`);
              return true;
            } catch (e) {
              if (e instanceof ServerError && e.errors) setErrors(e.errors as NodeError[]);
              throw e;
            }
          }}
        />
      )}
    </div>
  );
}

function NodePanel(props: {
  node: CanvasNode;
  kind: NodeKindDef | undefined;
  schema: Schema;
  errors: NodeError[];
  stats?: NodeStats;
  taken: string[];
  onChange: (settings: Record<string, unknown>, key: string) => void;
  onRename: (to: string) => void;
  onDelete: () => void;
}) {
  const { node, kind, schema, errors } = props;
  const [id, setId] = useState(node.id);
  const idProblem = id === node.id ? null : !/^[A-Za-z0-9_-]{1,100}$/.test(id) ? 'Letters, digits, - and _ only.' : props.taken.includes(id) ? 'Another node has this id.' : null;
  const byField: Record<string, string[]> = {};
  for (const e of errors) if (e.field) (byField[e.field.split('.').pop() ?? e.field] ??= []).push(e.message);
  const renameRef = useRef(props.onRename);
  renameRef.current = props.onRename;
  return (
    <div className="panel-inner" data-testid="node-panel">
      <h2>{kind?.label ?? node.data.kind}</h2>
      {kind?.description && <p className="muted small">{kind.description}</p>}
      <div className="field">
        <label htmlFor="node-id">Node id</label>
        <input
          id="node-id"
          value={id}
          onChange={(e) => setId(e.target.value)}
          onBlur={() => {
            if (!idProblem && id !== node.id) renameRef.current(id);
          }}
          onKeyDown={(e) => {
            if (e.key === 'Enter' && !idProblem && id !== node.id) renameRef.current(id);
          }}
        />
        {idProblem && <div className="field-error">{idProblem}</div>}
      </div>
      {errors.length > 0 && (
        <ul className="errors" aria-label="Errors of this node">
          {errors.map((e, i) => (
            <li key={i}>
              {e.field && <code>{e.field}</code>} {e.message} <span className="muted">({e.code})</span>
            </li>
          ))}
        </ul>
      )}
      {kind ? (
        <SchemaForm root={schema} schema={kind.settings} value={node.data.settings} errors={byField} onChange={props.onChange} />
      ) : (
        <p className="error">The server does not know the node kind “{node.data.kind}”.</p>
      )}
      {props.stats && (
        <dl className="stats-list">
          {Object.entries(props.stats)
            .filter(([k, v]) => k !== 'node' && typeof v === 'number')
            .map(([k, v]) => (
              <div key={k}>
                <dt>{k}</dt>
                <dd>{v as number}</dd>
              </div>
            ))}
        </dl>
      )}
      <button className="danger" onClick={props.onDelete}>
        Delete node
      </button>
    </div>
  );
}

function JourneyPanel(props: {
  schema: Schema;
  meta: Record<string, unknown>;
  selectedCount: number;
  generalErrors: NodeError[];
  errorCount: number;
  onChange: (meta: Record<string, unknown>, key: string) => void;
}) {
  const settings = useMemo(() => journeySettingsSchema(props.schema), [props.schema]);
  return (
    <div className="panel-inner" data-testid="journey-panel">
      <h2>Journey</h2>
      {props.selectedCount > 1 && <p className="muted">{props.selectedCount} nodes selected (Delete removes them).</p>}
      <p className={props.errorCount ? 'error-text' : 'ok-text'} data-testid="validity">
        {props.errorCount === 0 ? 'Valid: ready to publish.' : `${props.errorCount} problem${props.errorCount > 1 ? 's' : ''} to fix before publishing.`}
      </p>
      {props.generalErrors.length > 0 && (
        <ul className="errors">
          {props.generalErrors.map((e, i) => (
            <li key={i}>
              {e.field && <code>{e.field}</code>} {e.message} <span className="muted">({e.code})</span>
            </li>
          ))}
        </ul>
      )}
      <SchemaForm root={props.schema} schema={settings} value={props.meta} onChange={props.onChange} />
    </div>
  );
}

function PublishDialog(props: { row: JourneyRow; draft: JourneyDoc; errors: NodeError[]; onClose: () => void; onPublish: () => Promise<boolean> }) {
  const { row, draft } = props;
  const [live, setLive] = useState<JourneyDoc | null | undefined>(row.live_version == null ? null : undefined);
  const [stats, setStats] = useState<NodeStat[]>([]);
  const [updates, setUpdates] = useState<TemplateUpdate[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    if (row.live_version == null) return;
    Promise.all([
      ok<{ document: JourneyDoc; templates?: Record<string, number> }>(
        api.GET('/v1/journeys/{id}/versions/{version}', { params: { path: { id: row.id, version: row.live_version } } }),
      ),
      ok<{ nodes: NodeStat[] }>(api.GET('/v1/journeys/{id}/stats', { params: { path: { id: row.id } } })),
      ok<{ templates: Array<{ id: string; version?: number }> }>(api.GET('/v1/templates')),
    ])
      .then(([v, s, t]) => {
        setLive(v.document);
        setStats(s.nodes ?? []);
        setUpdates(templateUpdates(draft, v.templates ?? {}, t.templates ?? []));
      })
      .catch((e) => setError(describe(e)));
  }, [row.id, row.live_version]);
  const diff = live === undefined ? null : publishDiff(live, draft, stats);
  return (
    <div className="modal-backdrop" onClick={props.onClose}>
      <div className="modal" role="dialog" aria-label="Publish" onClick={(e) => e.stopPropagation()}>
        <h2>Publish “{String(draft.name ?? row.id)}”</h2>
        {props.errors.length > 0 && <div className="error">The draft has {props.errors.length} problem(s); the server will refuse it until they are fixed.</div>}
        {!diff && !error && <Loading what="the live version" />}
        {diff && (
          <div className="diff" data-testid="publish-summary">
            {diff.firstVersion ? (
              <p>This is the first version: contacts enter it from now on when its trigger fires.</p>
            ) : (
              <>
                <p>
                  Publishing makes version {(row.live_version ?? 0) + 1}. New entries take it; contacts already in the journey stay on the version they entered.
                </p>
                <ul>
                  <li>{diff.added.length ? `Nodes added: ${diff.added.join(', ')}` : 'No nodes added.'}</li>
                  <li>{diff.removed.length ? `Nodes removed: ${diff.removed.join(', ')}` : 'No nodes removed.'}</li>
                  <li>{diff.changed.length ? `Nodes changed: ${diff.changed.join(', ')}` : 'No node settings changed.'}</li>
                  <li>
                    Edges: {diff.edgesAdded} added, {diff.edgesRemoved} removed.
                  </li>
                  {diff.settingsChanged.length > 0 && <li>Journey settings changed: {diff.settingsChanged.join(', ')}</li>}
                  {updates.length > 0 && (
                    <li data-testid="template-updates">
                      Templates edited since the live version: {updates.map((u) => `${u.id} (version ${u.from ?? '–'} → ${u.to})`).join(', ')}. New entries get the new copy; contacts already in
                      the journey keep the copy of their version.
                    </li>
                  )}
                </ul>
                {diff.waitingAtRemoved > 0 && (
                  <p className="warn">
                    {diff.waitingAtRemoved} contact(s) wait now at removed nodes; they finish the path of the version they are on.
                  </p>
                )}
                {diff.waitingAtChanged > 0 && <p className="warn">{diff.waitingAtChanged} contact(s) wait now at changed nodes and keep the old settings.</p>}
              </>
            )}
          </div>
        )}
        <ErrorBanner error={error} />
        <div className="actions">
          <button onClick={props.onClose}>Cancel</button>
          <button
            className="primary"
            disabled={busy || !diff}
            onClick={async () => {
              setBusy(true);
              setError(null);
              try {
                if (await props.onPublish()) props.onClose();
              } catch (e) {
                setError(describe(e));
              } finally {
                setBusy(false);
              }
            }}
          >
            Publish now
          </button>
        </div>
      </div>
    </div>
  );
}
