import { describe, expect, it } from 'vitest';
import { outputsOf, parseOutputs } from './outputs';
import schema from './fixtures/journey.schema.json';
import { nodeKinds, type Schema } from './schema';
import { canvasToDoc, clean, connect, docToCanvas, freshId, removeItems, renameNode, type JourneyDoc } from './graph';
import { push, redo, replace, start, undo, canUndo, canRedo, LIMIT } from './history';
import { publishDiff, sentTemplates, stable, templateUpdates } from './diff';
import { smsInfo } from './sms';
import { layout } from './layout';

const cart: JourneyDoc = {
  id: 'abandoned-cart',
  name: 'Abandoned cart',
  entry: { reentry: 'every_time', key: 'cart_id' },
  goal: { event: 'Order Completed' },
  nodes: [
    { id: 'product-added', type: 'trigger', event: 'Product Added', position: { x: 0, y: 0 } },
    { id: 'wait-for-order', type: 'wait_for_event', event: 'Order Completed', timeout: '24h', position: { x: 0, y: 150 } },
    { id: 'cart-email', type: 'send_email', template: 'cart-reminder-email', position: { x: 0, y: 300 } },
    { id: 'ordered', type: 'exit', position: { x: 300, y: 300 } },
  ],
  edges: [
    { from: 'product-added', to: 'wait-for-order' },
    { from: 'wait-for-order', to: 'ordered', output: 'event' },
    { from: 'wait-for-order', to: 'cart-email', output: 'timeout' },
  ],
};

describe('outputs', () => {
  const kinds = nodeKinds(schema as Schema);
  const outputsFor = (type: string, settings: Record<string, unknown>) => outputsOf(settings, kinds.find((k) => k.type === type)?.outputs);
  it('come from each kind\'s x-outputs in the server\'s schema', () => {
    expect(outputsFor('branch', {})).toEqual(['yes', 'no']);
    expect(outputsFor('wait_for_event', {})).toEqual(['event', 'timeout']);
    expect(outputsFor('wait_until_date', {})).toEqual(['next', 'missed']);
    expect(outputsFor('exit', {})).toEqual([]);
    expect(outputsFor('jump', { to: 'x' })).toEqual([]);
    expect(outputsFor('delay', {})).toEqual(['next']);
    expect(outputsFor('send_email', {})).toEqual(['next']);
  });
  it('follow the settings: split branches, experiment variants and holdout', () => {
    expect(outputsFor('random_split', { branches: [{ name: 'a', percent: 50 }, { name: 'b', percent: 50 }, { name: '', percent: 0 }] })).toEqual(['a', 'b']);
    const variants = [{ name: 'a', percent: 45 }, { name: 'b', percent: 45 }];
    expect(outputsFor('experiment', { variants, holdout: 10 })).toEqual(['a', 'b', 'holdout']);
    expect(outputsFor('experiment', { variants, holdout: 0 })).toEqual(['a', 'b']);
    expect(outputsFor('experiment', { variants })).toEqual(['a', 'b']);
    expect(outputsFor('random_split', {})).toEqual([]);
  });
  it('every kind publishes them, and its example has outputs of the right shape', () => {
    for (const k of kinds) {
      expect(k.outputs, k.type).toBeDefined();
      const example = (schema as Schema).$defs.Node.oneOf.find((v: Schema) => v.properties.type.const === k.type).examples[0];
      for (const o of outputsOf(example, k.outputs)) expect(o).toMatch(/^[A-Za-z0-9_-]+$/);
    }
  });
  it('for a kind the server adds: its x-outputs, with no UI code', () => {
    expect(outputsOf({}, parseOutputs(['delivered', 'failed']))).toEqual(['delivered', 'failed']);
    expect(outputsOf({ arms: [{ key: 'x' }, { key: 'y' }], fallback: true }, parseOutputs([{ from: 'arms', field: 'key' }, { output: 'else', when: 'fallback' }]))).toEqual(['x', 'y', 'else']);
  });
  it('without a kind (not in the schema, or not loaded yet): the default output', () => {
    expect(outputsOf({}, undefined)).toEqual(['next']);
    expect(parseOutputs('yes')).toBeUndefined();
    expect(parseOutputs([{ bogus: 1 }])).toBeUndefined();
  });
});

describe('graph and document', () => {
  it('round-trips a document, keeping what the canvas does not draw', () => {
    const canvas = docToCanvas(cart);
    expect(canvas.nodes).toHaveLength(4);
    expect(canvas.edges.map((e) => e.sourceHandle)).toEqual(['next', 'event', 'timeout']);
    expect(canvas.nodes[1].data).toEqual({ kind: 'wait_for_event', settings: { event: 'Order Completed', timeout: '24h' } });
    const back = canvasToDoc(canvas);
    expect(stable(back)).toBe(stable(cart));
  });
  it('drops empty optional settings', () => {
    expect(clean({ a: '', b: undefined, c: { d: '' , e: 1 }, f: [1] })).toEqual({ c: { e: 1 }, f: [1] });
  });
  it('keeps one edge per output', () => {
    const c = docToCanvas(cart);
    const edges = connect(c.edges, 'wait-for-order', 'timeout', 'ordered');
    expect(edges.filter((e) => e.source === 'wait-for-order' && e.sourceHandle === 'timeout').map((e) => e.target)).toEqual(['ordered']);
    expect(connect(c.edges, 'ordered', 'next', 'ordered')).toBe(c.edges);
  });
  it('renames a node with its edges, and refuses a taken id', () => {
    const c = renameNode(docToCanvas(cart), 'wait-for-order', 'wait');
    expect(c.edges.map((e) => e.id)).toEqual(['product-added:next->wait', 'wait:event->ordered', 'wait:timeout->cart-email']);
    const same = docToCanvas(cart);
    expect(renameNode(same, 'ordered', 'cart-email')).toBe(same);
  });
  it('removes nodes with the edges that touch them', () => {
    const c = removeItems(docToCanvas(cart), new Set(['wait-for-order']), new Set());
    expect(c.nodes.map((n) => n.id)).toEqual(['product-added', 'cart-email', 'ordered']);
    expect(c.edges).toEqual([]);
  });
  it('gives fresh ids from the kind', () => {
    expect(freshId('send_email', ['a'])).toBe('send-email');
    expect(freshId('send_email', ['send-email', 'send-email-2'])).toBe('send-email-3');
  });
  it('lays out top to bottom', () => {
    const c = docToCanvas(cart);
    const laid = layout(c.nodes, c.edges);
    const y = Object.fromEntries(laid.map((n) => [n.id, n.position.y]));
    expect(y['product-added']).toBeLessThan(y['wait-for-order']);
    expect(y['wait-for-order']).toBeLessThan(y['cart-email']);
  });
});

describe('undo and redo', () => {
  it('walks back and forth', () => {
    let h = start(1);
    h = push(h, 2);
    h = push(h, 3);
    h = undo(h);
    expect(h.present).toBe(2);
    h = undo(h);
    expect(h.present).toBe(1);
    expect(canUndo(h)).toBe(false);
    h = redo(h);
    expect(h.present).toBe(2);
    h = push(h, 9);
    expect(canRedo(h)).toBe(false);
    expect(undo(h).present).toBe(2);
  });
  it('coalesces typing in one field into one step', () => {
    let h = start('');
    h = push(h, 'a', 'node:event');
    h = push(h, 'ab', 'node:event');
    h = push(h, 'abc', 'node:event');
    h = push(h, 'abc!', 'node:timeout');
    expect(undo(h).present).toBe('abc');
    expect(undo(undo(h)).present).toBe('');
  });
  it('replace does not make a step; the stack is bounded', () => {
    let h = start(0);
    h = replace(h, 5);
    expect(canUndo(h)).toBe(false);
    for (let i = 1; i <= LIMIT + 20; i++) h = push(h, i);
    expect(h.past.length).toBe(LIMIT);
  });
});

describe('publish summary', () => {
  it('first version', () => {
    expect(publishDiff(null, cart).firstVersion).toBe(true);
  });
  it('nodes added, removed, changed, and contacts waiting at them', () => {
    const draft: JourneyDoc = structuredClone(cart);
    draft.nodes = draft.nodes!.filter((n) => n.id !== 'cart-email');
    draft.nodes!.push({ id: 'cart-sms', type: 'send_sms', template: 'sms' });
    draft.nodes![1] = { ...draft.nodes![1], timeout: '12h', position: { x: 99, y: 99 } };
    draft.edges = draft.edges!.filter((e) => e.to !== 'cart-email');
    draft.edges!.push({ from: 'wait-for-order', to: 'cart-sms', output: 'timeout' });
    draft.name = 'Cart';
    const d = publishDiff(cart, draft, [
      { node: 'wait-for-order', waiting: 4 },
      { node: 'cart-email', waiting: 2 },
    ]);
    expect(d.added).toEqual(['cart-sms']);
    expect(d.removed).toEqual(['cart-email']);
    expect(d.changed).toEqual(['wait-for-order']);
    expect(d.edgesAdded).toBe(1);
    expect(d.edgesRemoved).toBe(1);
    expect(d.waitingAtRemoved).toBe(2);
    expect(d.waitingAtChanged).toBe(4);
    expect(d.settingsChanged).toEqual(['name']);
  });
  it('templates edited since the live version was published', () => {
    const draft: JourneyDoc = structuredClone(cart);
    draft.nodes!.push({ id: 'cart-sms', type: 'send_sms', template: 'sms' }, { id: 'again', type: 'send_sms', template: 'sms' });
    const sent = sentTemplates(draft);
    expect(sent).toContain('sms');
    expect(sent.filter((t) => t === 'sms').length).toBe(1);
    const current = sent.map((id) => ({ id, version: id === 'sms' ? 3 : 1 }));
    const pinned = Object.fromEntries(sent.filter((id) => id !== 'sms').map((id) => [id, 1]));
    expect(templateUpdates(draft, pinned, current)).toEqual([{ id: 'sms', from: null, to: 3 }]);
    expect(templateUpdates(draft, { ...pinned, sms: 2 }, current)).toEqual([{ id: 'sms', from: 2, to: 3 }]);
    expect(templateUpdates(draft, { ...pinned, sms: 3 }, current)).toEqual([]);
    // A template that does not exist (yet) is the validation's business, not an update.
    expect(templateUpdates(draft, pinned, [])).toEqual([]);
  });
  it('moving a node is no change', () => {
    const draft: JourneyDoc = structuredClone(cart);
    draft.nodes![0] = { ...draft.nodes![0], position: { x: 500, y: 500 } };
    const d = publishDiff(cart, draft);
    expect([d.added, d.removed, d.changed, d.settingsChanged]).toEqual([[], [], [], []]);
  });
});

describe('sms segments', () => {
  it('GSM-7 and UCS-2', () => {
    expect(smsInfo('hello')).toEqual({ encoding: 'GSM-7', units: 5, segments: 1 });
    expect(smsInfo('a'.repeat(160)).segments).toBe(1);
    expect(smsInfo('a'.repeat(161)).segments).toBe(2);
    expect(smsInfo('€'.repeat(80)).units).toBe(160);
    expect(smsInfo('héllo ✓')).toMatchObject({ encoding: 'UCS-2', segments: 1 });
    expect(smsInfo('✓'.repeat(71)).segments).toBe(2);
  });
});
