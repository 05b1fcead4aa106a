import { describe, expect, it } from 'vitest';
import schema from './fixtures/journey.schema.json';
import { fieldFor, fieldsOf, initialSettings, initialValue, journeySettingsSchema, nodeKinds, resolve, variantIndex, type Schema } from './schema';

const root = schema as Schema;

describe('node kinds from the journey schema', () => {
  const kinds = nodeKinds(root);
  it('lists every variant of Node, tagged by type', () => {
    const types = kinds.map((k) => k.type);
    for (const t of ['trigger', 'delay', 'wait_for_event', 'branch', 'random_split', 'send_email', 'send_sms', 'exit', 'webhook']) {
      expect(types).toContain(t);
    }
    expect(new Set(types).size).toBe(types.length);
  });
  it('keeps type, id and position out of the settings', () => {
    for (const k of kinds) {
      expect(Object.keys(k.settings.properties)).not.toContain('type');
      expect(Object.keys(k.settings.properties)).not.toContain('id');
      expect(Object.keys(k.settings.properties)).not.toContain('position');
    }
  });
  it('labels kinds readably and keeps their descriptions', () => {
    const wait = kinds.find((k) => k.type === 'wait_for_event')!;
    expect(wait.label).toBe('Wait for event');
    expect(wait.description).toMatch(/Waits for an event/);
  });
  it('reads each kind\'s outputs from its x-outputs', () => {
    const byType = Object.fromEntries(kinds.map((k) => [k.type, k.outputs]));
    expect(byType.branch).toEqual(['yes', 'no']);
    expect(byType.exit).toEqual([]);
    expect(byType.random_split).toEqual([{ from: 'branches', field: 'name' }]);
    expect(byType.experiment).toEqual([{ from: 'variants', field: 'name' }, { output: 'holdout', when: 'holdout' }]);
  });
  it('picks up a kind added on the server without UI code', () => {
    const extended = structuredClone(root);
    extended.$defs.Node.oneOf.push({
      type: 'object',
      description: 'Sends a push notification.',
      'x-outputs': ['delivered', 'failed'],
      properties: { type: { type: 'string', const: 'send_push' }, title: { type: 'string' }, badge: { type: ['integer', 'null'] } },
      required: ['type', 'title'],
    });
    const push = nodeKinds(extended).find((k) => k.type === 'send_push')!;
    expect(push.label).toBe('Send push');
    expect(push.outputs).toEqual(['delivered', 'failed']);
    const fields = fieldsOf(extended, push.settings);
    expect(fields.map((f) => [f.key, f.kind, f.required])).toEqual([
      ['title', 'string', true],
      ['badge', 'number', false],
    ]);
    expect(initialSettings(extended, push)).toEqual({ title: '' });
  });
});

describe('form fields', () => {
  const kinds = nodeKinds(root);
  const settingsOf = (t: string) => kinds.find((k) => k.type === t)!.settings;
  it('strings, optional booleans and JSON for filters', () => {
    const fields = fieldsOf(root, settingsOf('wait_for_event'));
    const byKey = Object.fromEntries(fields.map((f) => [f.key, f]));
    expect(byKey.event.kind).toBe('string');
    expect(byKey.timeout.kind).toBe('string');
    expect(byKey.timeout.required).toBe(true);
    expect(byKey.match_key.kind).toBe('boolean');
    expect(byKey.match_key.required).toBe(false);
    expect(byKey.filter.kind).toBe('json');
  });
  it('a branch condition falls back to JSON text', () => {
    const [condition] = fieldsOf(root, settingsOf('branch'));
    expect(condition.kind).toBe('json');
    expect(condition.required).toBe(true);
  });
  it('arrays of objects get sub-forms (random split branches)', () => {
    const [branches] = fieldsOf(root, settingsOf('random_split'));
    expect(branches.kind).toBe('array');
    if (branches.kind !== 'array' || branches.item.kind !== 'object') throw new Error('not an array of objects');
    expect(branches.item.fields.map((f) => [f.key, f.kind])).toEqual([
      ['name', 'string'],
      ['percent', 'number'],
    ]);
  });
  it('enums become choices', () => {
    const s: Schema = { type: 'object', properties: { method: { enum: ['POST', 'PUT'] }, mode: { oneOf: [{ const: 'a' }, { const: 'b', description: 'B' }] } } };
    const fields = fieldsOf(s, s);
    expect(fields.map((f) => f.kind)).toEqual(['enum', 'enum']);
    expect(fields[1].kind === 'enum' && fields[1].options).toEqual(['a', 'b']);
  });
  it('constants mixed with objects become a choice with a sub-form (re-entry)', () => {
    const fields = fieldsOf(root, journeySettingsSchema(root));
    const entry = fields.find((f) => f.key === 'entry')!;
    if (entry.kind !== 'object') throw new Error('entry is not an object');
    const reentry = entry.fields.find((f) => f.key === 'reentry')!;
    if (reentry.kind !== 'variant') throw new Error(`reentry is ${reentry.kind}`);
    expect(reentry.options.map((o) => o.label)).toEqual(['once', 'every_time', 'cooldown']);
    expect(variantIndex(reentry.options, 'every_time')).toBe(1);
    expect(variantIndex(reentry.options, { cooldown: '7d' })).toBe(2);
    expect(variantIndex(reentry.options, undefined)).toBe(-1);
    const cooldown = reentry.options[2].field!;
    expect(cooldown.kind === 'object' && cooldown.fields.map((f) => f.key)).toEqual(['cooldown']);
    expect(initialValue(reentry)).toBe('once');
  });
  it('journey settings: nested objects for entry and goal', () => {
    const fields = fieldsOf(root, journeySettingsSchema(root));
    const byKey = Object.fromEntries(fields.map((f) => [f.key, f]));
    expect(byKey.name.kind).toBe('string');
    expect(byKey.entry.kind).toBe('object');
    expect(byKey.goal.kind).toBe('object');
    expect(byKey.exit_on.kind).toBe('array');
    expect(Object.keys(byKey)).not.toContain('nodes');
  });
  it('resolves references and allOf', () => {
    const s: Schema = { $defs: { A: { type: 'object', properties: { a: { type: 'string' } }, required: ['a'] } }, allOf: [{ $ref: '#/$defs/A' }, { properties: { b: { type: 'number' } } }] };
    const r = resolve(s, s);
    expect(Object.keys(r.properties)).toEqual(['a', 'b']);
    expect(r.required).toEqual(['a']);
    expect(fieldFor(s, 'x', { $ref: '#/$defs/A' }, true).kind).toBe('object');
  });
});
