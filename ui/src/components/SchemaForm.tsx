// A form generated from a JSON Schema (see lib/schema.ts): strings, numbers, booleans, enums,
// arrays, nested objects, and JSON text for everything else (conditions, filters, maps).
import { useEffect, useId, useState } from 'react';
import { fieldsOf, initialValue, variantIndex, type Field, type Schema } from '../lib/schema';

type Obj = Record<string, unknown>;

export interface SchemaFormProps {
  root: Schema;
  schema: Schema;
  value: Obj;
  /** `key` names the field that changed (for coalescing undo steps while typing). */
  onChange: (value: Obj, key: string) => void;
  /** Server errors by field name. */
  errors?: Record<string, string[]>;
}

export function SchemaForm({ root, schema, value, onChange, errors = {} }: SchemaFormProps) {
  const fields = fieldsOf(root, schema);
  if (fields.length === 0) return <p className="muted">No settings.</p>;
  return (
    <div className="form">
      {fields.map((f) => (
        <FieldRow
          key={f.key}
          path={f.key}
          field={f}
          value={value[f.key]}
          errors={errors[f.key]}
          onChange={(v) => {
            const next = { ...value };
            if (v === undefined) delete next[f.key];
            else next[f.key] = v;
            onChange(next, f.key);
          }}
        />
      ))}
    </div>
  );
}

function FieldRow({ field, path, value, onChange, errors }: { field: Field; path: string; value: unknown; onChange: (v: unknown) => void; errors?: string[] }) {
  const id = useId();
  // The required mark stays outside the label, so that the label is the field's plain name.
  const label = (
    <span className="label-row">
      <label htmlFor={id} title={field.description}>
        {field.label}
      </label>
      {field.required && (
        <span className="req" title="required">
          *
        </span>
      )}
    </span>
  );
  return (
    <div className={`field field-${field.kind}${errors?.length ? ' has-error' : ''}`} data-field={path}>
      {field.kind === 'boolean' ? null : label}
      <FieldInput id={id} path={path} field={field} value={value} onChange={onChange} labelNode={label} />
      {field.description && field.kind !== 'boolean' && <div className="hint">{field.description}</div>}
      {errors?.map((e, i) => (
        <div className="field-error" key={i}>
          {e}
        </div>
      ))}
    </div>
  );
}

function FieldInput({ id, path, field, value, onChange, labelNode }: { id: string; path: string; field: Field; value: unknown; onChange: (v: unknown) => void; labelNode: React.ReactNode }) {
  switch (field.kind) {
    case 'string':
      return (
        <input
          id={id}
          type="text"
          value={typeof value === 'string' ? value : value == null ? '' : String(value)}
          onChange={(e) => onChange(e.target.value === '' && !field.required ? undefined : e.target.value)}
        />
      );
    case 'number':
      return (
        <input
          id={id}
          type="number"
          step={field.integer ? 1 : 'any'}
          value={typeof value === 'number' ? value : ''}
          onChange={(e) => onChange(e.target.value === '' ? undefined : Number(e.target.value))}
        />
      );
    case 'boolean':
      if (field.required) {
        return (
          <label className="check">
            <input id={id} type="checkbox" checked={value === true} onChange={(e) => onChange(e.target.checked)} /> {labelNode}
          </label>
        );
      }
      return (
        <>
          {labelNode}
          <select id={id} value={value === true ? 'true' : value === false ? 'false' : ''} onChange={(e) => onChange(e.target.value === '' ? undefined : e.target.value === 'true')}>
            <option value="">(default)</option>
            <option value="true">yes</option>
            <option value="false">no</option>
          </select>
        </>
      );
    case 'enum':
      return (
        <select id={id} value={typeof value === 'string' ? value : ''} onChange={(e) => onChange(e.target.value === '' ? undefined : e.target.value)}>
          {!field.required && <option value="">(default)</option>}
          {typeof value === 'string' && !field.options.includes(value) && <option value={value}>{value}</option>}
          {field.options.map((o) => (
            <option key={o} value={o}>
              {o}
            </option>
          ))}
        </select>
      );
    case 'array': {
      const items = Array.isArray(value) ? value : [];
      return (
        <div className="array" id={id}>
          {items.map((item, i) => (
            <div className="array-item" key={i}>
              <div className="array-body">
                <FieldInput id={`${id}-${i}`} path={`${path}.${i}`} field={{ ...field.item, key: String(i) }} value={item} labelNode={null} onChange={(v) => onChange(items.map((x, j) => (j === i ? v : x)))} />
              </div>
              <button type="button" className="small" aria-label={`Remove ${field.label} ${i + 1}`} onClick={() => onChange(items.filter((_, j) => j !== i))}>
                ×
              </button>
            </div>
          ))}
          <button type="button" className="small" onClick={() => onChange([...items, initialValue(field.item)])}>
            + Add {field.label.toLowerCase()}
          </button>
        </div>
      );
    }
    case 'object': {
      const obj = value && typeof value === 'object' && !Array.isArray(value) ? (value as Obj) : {};
      return (
        <fieldset className="object" id={id} aria-label={field.label}>
          {field.fields.map((f) => (
            <FieldRow
              key={f.key}
              path={`${path}.${f.key}`}
              field={f}
              value={obj[f.key]}
              onChange={(v) => {
                const next = { ...obj };
                if (v === undefined) delete next[f.key];
                else next[f.key] = v;
                onChange(Object.keys(next).length === 0 && !field.required ? undefined : next);
              }}
            />
          ))}
        </fieldset>
      );
    }
    case 'variant': {
      const index = variantIndex(field.options, value);
      const current = index >= 0 ? field.options[index] : undefined;
      return (
        <div className="variant">
          <select
            id={id}
            value={index >= 0 ? String(index) : ''}
            onChange={(e) => {
              if (e.target.value === '') return onChange(undefined);
              const o = field.options[Number(e.target.value)];
              onChange(o.constValue ?? (o.field ? initialValue(o.field) : {}));
            }}
          >
            {(!field.required || index < 0) && <option value="">(default)</option>}
            {field.options.map((o, i) => (
              <option key={i} value={String(i)}>
                {o.label}
              </option>
            ))}
          </select>
          {current?.field && <FieldInput id={`${id}-v`} path={path} field={current.field} value={value} onChange={onChange} labelNode={null} />}
        </div>
      );
    }
    case 'json':
      return <JsonInput id={id} value={value} onChange={onChange} required={field.required} />;
  }
}

/** JSON text for complex values; the value changes only when the text parses. */
export function JsonInput({ id, value, onChange, required }: { id: string; value: unknown; onChange: (v: unknown) => void; required: boolean }) {
  const pretty = value === undefined ? '' : JSON.stringify(value, null, 2);
  const [text, setText] = useState(pretty);
  const [bad, setBad] = useState<string | null>(null);
  useEffect(() => {
    // Follow outside changes (undo, another node) unless the text already means the same.
    try {
      if (text.trim() === '' ? value !== undefined : JSON.stringify(JSON.parse(text)) !== JSON.stringify(value)) setText(pretty);
    } catch {
      setText(pretty);
    }
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [pretty]);
  return (
    <>
      <textarea
        id={id}
        className="json"
        rows={Math.min(12, Math.max(3, text.split('\n').length))}
        value={text}
        spellCheck={false}
        onChange={(e) => {
          setText(e.target.value);
          if (e.target.value.trim() === '') {
            setBad(null);
            onChange(required ? {} : undefined);
            return;
          }
          try {
            const parsed = JSON.parse(e.target.value);
            setBad(null);
            onChange(parsed);
          } catch (err) {
            setBad(`not valid JSON yet: ${(err as Error).message}`);
          }
        }}
      />
      {bad && <div className="field-error">{bad}</div>}
    </>
  );
}
