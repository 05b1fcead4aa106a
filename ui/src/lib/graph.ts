// Converts between a journey document (what the server stores) and the canvas's nodes and
// edges. Everything in the document that the canvas does not draw (name, entry, goal, ...) is
// kept aside and put back unchanged.

export interface JourneyNodeData {
  kind: string;
  settings: Record<string, unknown>;
  [key: string]: unknown;
}

export interface CanvasNode {
  id: string;
  type: 'journey';
  position: { x: number; y: number };
  data: JourneyNodeData;
  selected?: boolean;
}

export interface CanvasEdge {
  id: string;
  source: string;
  target: string;
  sourceHandle: string;
  label?: string;
  selected?: boolean;
}

export type JourneyDoc = Record<string, unknown> & {
  id?: string;
  nodes?: Array<Record<string, unknown>>;
  edges?: Array<{ from: string; to: string; output?: string }>;
};

export interface Canvas {
  /** The document without nodes and edges. */
  meta: Record<string, unknown>;
  nodes: CanvasNode[];
  edges: CanvasEdge[];
}

export function edgeId(from: string, output: string, to: string): string {
  return `${from}:${output}->${to}`;
}

export function docToCanvas(doc: JourneyDoc): Canvas {
  const { nodes = [], edges = [], ...meta } = doc;
  const canvasNodes: CanvasNode[] = nodes.map((n, i) => {
    const { id, type, position, ...settings } = n as Record<string, any>;
    const pos =
      position && typeof position.x === 'number' && typeof position.y === 'number'
        ? { x: position.x, y: position.y }
        : { x: 0, y: i * 120 };
    return { id: String(id), type: 'journey', position: pos, data: { kind: String(type), settings } };
  });
  const canvasEdges: CanvasEdge[] = edges.map((e) => {
    const output = e.output ?? 'next';
    return { id: edgeId(e.from, output, e.to), source: e.from, target: e.to, sourceHandle: output, label: output === 'next' ? undefined : output };
  });
  return { meta, nodes: canvasNodes, edges: canvasEdges };
}

/** Drops empty optional values so that the document stays as a person would write it. */
export function clean(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(clean);
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      if (v === undefined || v === '') continue;
      out[k] = clean(v);
    }
    return out;
  }
  return value;
}

export function canvasToDoc(canvas: Canvas): JourneyDoc {
  return {
    ...canvas.meta,
    nodes: canvas.nodes.map((n) => ({
      id: n.id,
      type: n.data.kind,
      ...(clean(n.data.settings) as Record<string, unknown>),
      position: { x: Math.round(n.position.x), y: Math.round(n.position.y) },
    })),
    edges: canvas.edges.map((e) =>
      e.sourceHandle && e.sourceHandle !== 'next'
        ? { from: e.source, to: e.target, output: e.sourceHandle }
        : { from: e.source, to: e.target },
    ),
  };
}

/** A node id that is not taken yet, from the kind (`send-email`, `send-email-2`, ...). */
export function freshId(kind: string, taken: Iterable<string>): string {
  const used = new Set(taken);
  const base = kind.replace(/_/g, '-');
  if (!used.has(base)) return base;
  for (let i = 2; ; i++) if (!used.has(`${base}-${i}`)) return `${base}-${i}`;
}

/** Adds an edge from an output, replacing the edge that left the same output (one per output). */
export function connect(edges: CanvasEdge[], source: string, output: string, target: string): CanvasEdge[] {
  if (source === target) return edges;
  const rest = edges.filter((e) => !(e.source === source && e.sourceHandle === output));
  return [...rest, { id: edgeId(source, output, target), source, target, sourceHandle: output, label: output === 'next' ? undefined : output }];
}

/** Renames a node and the edges that touch it. */
export function renameNode(canvas: Canvas, from: string, to: string): Canvas {
  if (from === to || canvas.nodes.some((n) => n.id === to)) return canvas;
  const nodes = canvas.nodes.map((n) => (n.id === from ? { ...n, id: to } : n));
  const edges = canvas.edges.map((e) => {
    const source = e.source === from ? to : e.source;
    const target = e.target === from ? to : e.target;
    return { ...e, source, target, id: edgeId(source, e.sourceHandle, target) };
  });
  return { ...canvas, nodes, edges };
}

/** Removes nodes and edges by id, and every edge touching a removed node. */
export function removeItems(canvas: Canvas, nodeIds: Set<string>, edgeIds: Set<string>): Canvas {
  return {
    ...canvas,
    nodes: canvas.nodes.filter((n) => !nodeIds.has(n.id)),
    edges: canvas.edges.filter((e) => !edgeIds.has(e.id) && !nodeIds.has(e.source) && !nodeIds.has(e.target)),
  };
}
