// Reads the server's journey JSON Schema (`GET /v1/schema/journey.json`) into what the builder
// needs: the node kinds (the `type`-tagged variants of `Node`) with their settings schemas, and
// form fields for any schema. Nothing here names a node kind: a kind added on the server shows
// up in the palette, with its form and its outputs, by itself.

import { parseOutputs, type OutputPart } from './outputs';

export type Schema = { [key: string]: any };

/** Follows `$ref`s (local `#/$defs/...` or `#/definitions/...`) and merges `allOf`. */
export function resolve(root: Schema, schema: Schema | boolean | undefined): Schema {
  if (schema === undefined || schema === true) return {};
  if (schema === false) return { not: {} };
  let s: Schema = schema;
  const seen = new Set<string>();
  while (typeof s.$ref === 'string' && !seen.has(s.$ref)) {
    seen.add(s.$ref);
    const target = lookup(root, s.$ref);
    const { $ref: _ref, ...rest } = s;
    s = { ...target, ...rest };
  }
  if (Array.isArray(s.allOf)) {
    const { allOf, ...rest } = s;
    let merged: Schema = rest;
    for (const part of allOf) merged = mergeObjects(merged, resolve(root, part));
    s = merged;
  }
  return s;
}

function lookup(root: Schema, ref: string): Schema {
  if (!ref.startsWith('#/')) return {};
  let cur: any = root;
  for (const part of ref.slice(2).split('/')) {
    cur = cur?.[part.replace(/~1/g, '/').replace(/~0/g, '~')];
  }
  return (cur as Schema) ?? {};
}

function mergeObjects(a: Schema, b: Schema): Schema {
  return {
    ...a,
    ...b,
    properties: { ...(a.properties ?? {}), ...(b.properties ?? {}) },
    required: [...new Set([...(a.required ?? []), ...(b.required ?? [])])],
  };
}

/** The variants of a schema (`oneOf` / `anyOf`), each resolved. */
function variants(root: Schema, s: Schema): Schema[] {
  const list = s.oneOf ?? s.anyOf;
  if (!Array.isArray(list)) return [];
  return list.map((v: Schema) => resolve(root, v));
}

/** The constant a property schema pins (`const`, or a one-value `enum`). */
function constOf(s: Schema | undefined): string | undefined {
  if (!s) return undefined;
  if (typeof s.const === 'string') return s.const;
  if (Array.isArray(s.enum) && s.enum.length === 1 && typeof s.enum[0] === 'string') return s.enum[0];
  return undefined;
}

export interface NodeKindDef {
  /** The `type` tag, e.g. `send_email`. */
  type: string;
  /** A readable label, e.g. "Send email". */
  label: string;
  description: string;
  /** An object schema of the node's settings (without `type`, `id` and `position`). */
  settings: Schema;
  /** The kind's outputs as its `x-outputs` extension describes them (see `outputs.ts`). */
  outputs?: OutputPart[];
}

const NODE_OWN_FIELDS = new Set(['type', 'id', 'position']);

export function labelOf(type: string): string {
  const words = type.replace(/[_-]+/g, ' ').trim();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** Node kinds from the journey schema: the variants of `properties.nodes.items`. */
export function nodeKinds(root: Schema): NodeKindDef[] {
  const doc = resolve(root, root);
  const nodeSchema = resolve(root, doc.properties?.nodes?.items);
  const found: NodeKindDef[] = [];
  const visit = (s: Schema, inherited: Schema) => {
    const vs = variants(root, s);
    if (vs.length === 0) {
      const merged = mergeObjects(inherited, s);
      const type = constOf(resolve(root, merged.properties?.type));
      if (!type) return;
      const properties: Schema = {};
      for (const [k, v] of Object.entries(merged.properties ?? {})) {
        if (!NODE_OWN_FIELDS.has(k)) properties[k] = v;
      }
      const required = (merged.required ?? []).filter((k: string) => !NODE_OWN_FIELDS.has(k));
      found.push({
        type,
        label: s.title ?? labelOf(type),
        description: s.description ?? '',
        settings: { type: 'object', properties, required },
        outputs: parseOutputs(s['x-outputs'] ?? merged['x-outputs']),
      });
      return;
    }
    const { oneOf: _o, anyOf: _a, ...base } = s;
    for (const v of vs) visit(v, mergeObjects(inherited, base));
  };
  visit(nodeSchema, {});
  const seen = new Set<string>();
  return found.filter((k) => (seen.has(k.type) ? false : (seen.add(k.type), true)));
}

/** The journey's own settings (everything but nodes, edges and templates). */
export function journeySettingsSchema(root: Schema): Schema {
  const doc = resolve(root, root);
  const properties: Schema = {};
  for (const [k, v] of Object.entries(doc.properties ?? {})) {
    if (!['nodes', 'edges', 'templates', 'id'].includes(k)) properties[k] = v;
  }
  return {
    type: 'object',
    properties,
    required: (doc.required ?? []).filter((k: string) => !['nodes', 'edges', 'id'].includes(k)),
  };
}

// ---- form fields ----

export type Field =
  | { kind: 'string'; key: string; label: string; required: boolean; description: string; format?: string }
  | { kind: 'number'; key: string; label: string; required: boolean; description: string; integer: boolean; minimum?: number; maximum?: number }
  | { kind: 'boolean'; key: string; label: string; required: boolean; description: string }
  | { kind: 'enum'; key: string; label: string; required: boolean; description: string; options: string[] }
  | { kind: 'array'; key: string; label: string; required: boolean; description: string; item: Field }
  | { kind: 'object'; key: string; label: string; required: boolean; description: string; fields: Field[] }
  | { kind: 'variant'; key: string; label: string; required: boolean; description: string; options: VariantOption[] }
  | { kind: 'json'; key: string; label: string; required: boolean; description: string };

/** One alternative of a `oneOf` that mixes constants and objects (e.g. `once` | `{cooldown}`). */
export interface VariantOption {
  label: string;
  constValue?: string;
  field?: Field;
  requiredKeys: string[];
}

/** Which alternative a value is. */
export function variantIndex(options: VariantOption[], value: unknown): number {
  if (typeof value === 'string') {
    const i = options.findIndex((o) => o.constValue === value);
    if (i >= 0) return i;
  }
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    const keys = Object.keys(value);
    const i = options.findIndex((o) => o.field && o.requiredKeys.length > 0 && o.requiredKeys.every((k) => keys.includes(k)));
    if (i >= 0) return i;
    const j = options.findIndex((o) => o.field);
    if (j >= 0) return j;
  }
  return -1;
}

function types(s: Schema): string[] {
  if (Array.isArray(s.type)) return s.type;
  if (typeof s.type === 'string') return [s.type];
  return [];
}

/** Strips `null` alternatives (`Option<T>`): `anyOf: [T, {type: null}]`, `type: [T, null]`. */
function nonNull(root: Schema, s: Schema): Schema {
  const list = s.anyOf ?? s.oneOf;
  if (Array.isArray(list)) {
    const rest = list.filter((v: Schema) => !(types(resolve(root, v)).length === 1 && types(resolve(root, v))[0] === 'null'));
    if (rest.length === 1 && rest.length < list.length) {
      const { anyOf: _a, oneOf: _o, ...base } = s;
      return { ...resolve(root, rest[0]), ...base, description: s.description ?? resolve(root, rest[0]).description };
    }
  }
  const t = types(s).filter((x) => x !== 'null');
  if (t.length === 1 && types(s).length > 1) return { ...s, type: t[0] };
  return s;
}

/** The string constants of an enum-like schema (`enum`, or `oneOf` of constants). */
function enumOptions(root: Schema, s: Schema): string[] | undefined {
  if (Array.isArray(s.enum) && s.enum.every((v: unknown) => typeof v === 'string')) return s.enum;
  const list = s.oneOf ?? s.anyOf;
  if (Array.isArray(list) && list.length > 0) {
    const consts = list.map((v: Schema) => constOf(resolve(root, v)));
    if (consts.every((c: string | undefined) => c !== undefined)) return consts as string[];
  }
  return undefined;
}

/** One form field for a property schema; complex parts fall back to JSON text. */
export function fieldFor(root: Schema, key: string, raw: Schema | boolean, required: boolean, depth = 0): Field {
  const s = nonNull(root, resolve(root, raw as Schema));
  const base = { key, label: s.title ?? labelOf(key), required, description: s.description ?? '' };
  const options = enumOptions(root, s);
  if (options) return { ...base, kind: 'enum', options };
  // Constants mixed with objects: a choice, and a sub-form for the objects. (Recursive unions
  // without constants, such as conditions, stay JSON text.)
  const alternatives = s.oneOf ?? s.anyOf;
  if (Array.isArray(alternatives) && depth < 3) {
    const vs = alternatives.map((v: Schema) => resolve(root, v)).filter((v: Schema) => !(types(v).length === 1 && types(v)[0] === 'null'));
    if (vs.length > 1 && vs.some((v: Schema) => constOf(v) !== undefined)) {
      const opts: VariantOption[] = vs.map((v: Schema) => {
        const c = constOf(v);
        if (c !== undefined) return { label: c, constValue: c, requiredKeys: [] };
        const req: string[] = v.required ?? [];
        return { label: v.title ?? req[0] ?? 'other', field: fieldFor(root, key, v, true, depth + 1), requiredKeys: req };
      });
      return { ...base, kind: 'variant', options: opts };
    }
  }
  const t = types(s);
  if (t.length === 1) {
    switch (t[0]) {
      case 'string':
        return { ...base, kind: 'string', format: s.format };
      case 'integer':
      case 'number':
        return { ...base, kind: 'number', integer: t[0] === 'integer', minimum: s.minimum, maximum: s.maximum };
      case 'boolean':
        return { ...base, kind: 'boolean' };
      case 'array': {
        const item = fieldFor(root, 'item', s.items ?? {}, true, depth + 1);
        return { ...base, kind: 'array', item };
      }
      case 'object': {
        const props = s.properties ?? {};
        const hasOpenKeys = s.additionalProperties !== undefined && s.additionalProperties !== false;
        if (Object.keys(props).length > 0 && !hasOpenKeys) {
          return { ...base, kind: 'object', fields: fieldsOf(root, s, depth + 1) };
        }
        return { ...base, kind: 'json' };
      }
    }
  }
  return { ...base, kind: 'json' };
}

/** The fields of an object schema, required ones first, then in schema order. */
export function fieldsOf(root: Schema, objectSchema: Schema, depth = 0): Field[] {
  const s = resolve(root, objectSchema);
  const required: string[] = s.required ?? [];
  const entries = Object.entries(s.properties ?? {});
  const fields = entries.map(([k, v]) => fieldFor(root, k, v as Schema, required.includes(k), depth));
  return [...fields.filter((f) => f.required), ...fields.filter((f) => !f.required)];
}

/** A starting value for a new node's required settings. */
export function initialValue(field: Field): unknown {
  switch (field.kind) {
    case 'string':
      return '';
    case 'number':
      return field.minimum ?? 0;
    case 'boolean':
      return false;
    case 'enum':
      return field.options[0];
    case 'array':
      return [];
    case 'object': {
      const out: Record<string, unknown> = {};
      for (const f of field.fields) if (f.required) out[f.key] = initialValue(f);
      return out;
    }
    case 'variant': {
      const first = field.options[0];
      return first.constValue ?? (first.field ? initialValue(first.field) : {});
    }
    case 'json':
      return {};
  }
}

export function initialSettings(root: Schema, kind: NodeKindDef): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of fieldsOf(root, kind.settings)) if (f.required) out[f.key] = initialValue(f);
  return out;
}
