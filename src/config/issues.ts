import type { ZodIssue, ZodTypeAny } from 'zod';
import { closestMatch } from '../util/closest.js';

/** Values of keys named like these are never echoed in a message. */
const SECRET_KEY = /password|secret|^token$/i;

/**
 * One line per validation problem, in the operator's terms: the key, what was given (from the TOML document) and
 * what is allowed; an unknown key close to a known one of its table gets "did you mean". Replaces the validation
 * library's own wording ("Expected string, received number").
 */
export function formatIssue(issue: ZodIssue, raw: unknown, schema: ZodTypeAny): string {
  const key = keyName(issue.path);
  if (issue.code === 'unrecognized_keys') {
    const known = tableKeys(schema, issue.path);
    return issue.keys
      .map((k) => {
        const guess = closestMatch(k, known);
        return `  ${key ? `${key}.` : ''}${k}: unknown key${guess ? ` (did you mean ${guess}?)` : ''}`;
      })
      .join('\n');
  }
  const given = valueAt(raw, issue.path);
  const last = issue.path.at(-1);
  const shown = typeof last === 'string' && SECRET_KEY.test(last) ? describeType(given) : describe(given);
  const got = given === undefined ? '' : ` (got ${shown})`;
  return `  ${key || '(top level)'}: ${allowed(issue, given)}${got}`;
}

function keyName(path: Array<string | number>): string {
  return path.map((p) => (typeof p === 'number' ? `[${p}]` : p)).join('.').replace(/\.\[/g, '[');
}

/** What the schema allows where the issue is, or the schema's own message when it was written for operators. */
function allowed(issue: ZodIssue, given: unknown): string {
  switch (issue.code) {
    case 'invalid_type':
      if (!/^(Expected |Required$)/.test(issue.message)) return issue.message;
      return given === undefined ? `required (${typeName(issue.expected)})` : `must be ${typeName(issue.expected)}`;
    case 'invalid_enum_value':
      return `must be one of ${issue.options.map((o) => JSON.stringify(o)).join(', ')}`;
    case 'invalid_literal':
      return `must be ${JSON.stringify(issue.expected)}`;
    case 'too_small':
      if (issue.type === 'string' && issue.minimum === 1) return 'must not be empty';
      return `must be ${issue.inclusive ? 'at least' : 'more than'} ${issue.minimum}${unit(issue.type)}`;
    case 'too_big':
      return `must be ${issue.inclusive ? 'at most' : 'less than'} ${issue.maximum}${unit(issue.type)}`;
    case 'not_multiple_of':
      return `must be a multiple of ${issue.multipleOf}`;
    case 'invalid_union':
      return `must be ${[...new Set(issue.unionErrors.flatMap((e) => e.issues.map((i) => allowed(i, given).replace(/^must be /, ''))))].join(', or ')}`;
    default:
      return issue.message;
  }
}

function unit(type: string): string {
  if (type === 'string') return ' character(s) long';
  if (type === 'array') return ' item(s)';
  return '';
}

/** zod's type names in TOML's terms. */
function typeName(type: string): string {
  switch (type) {
    case 'object':
      return 'a table';
    case 'array':
      return 'an array';
    case 'string':
      return 'a string in quotes';
    case 'number':
    case 'integer':
      return `a ${type === 'integer' ? 'whole ' : ''}number`;
    case 'boolean':
      return 'true or false';
    default:
      return `a ${type}`;
  }
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}...` : value);
  if (typeof value === 'number' || typeof value === 'boolean') return `${value}, ${describeType(value)}`;
  return describeType(value);
}

function describeType(value: unknown): string {
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (value instanceof Date) return 'a date';
  if (value === null || value === undefined) return 'nothing';
  if (typeof value === 'object') return 'a table';
  if (typeof value === 'boolean') return 'true or false';
  return `a ${typeof value}`;
}

function valueAt(raw: unknown, path: Array<string | number>): unknown {
  let value = raw;
  for (const p of path) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<string | number, unknown>)[p];
  }
  return value;
}

/** The keys the table at `path` may have, following the schema through defaults, refinements, records and arrays. */
function tableKeys(schema: ZodTypeAny, path: Array<string | number>): string[] {
  let node: ZodTypeAny | undefined = unwrap(schema);
  for (const p of path) {
    if (!node) return [];
    const def = node._def as { typeName?: string; shape?: () => Record<string, ZodTypeAny>; valueType?: ZodTypeAny; type?: ZodTypeAny };
    if (def.typeName === 'ZodObject') node = def.shape?.()[p];
    else if (def.typeName === 'ZodRecord') node = def.valueType;
    else if (def.typeName === 'ZodArray' && typeof p === 'number') node = def.type;
    else return [];
    node = node && unwrap(node);
  }
  const def = node?._def as { typeName?: string; shape?: () => Record<string, ZodTypeAny> } | undefined;
  return def?.typeName === 'ZodObject' && def.shape ? Object.keys(def.shape()) : [];
}

/** The schema under its defaults, optionals and refinements. */
function unwrap(schema: ZodTypeAny): ZodTypeAny {
  let node = schema;
  for (;;) {
    const def = node._def as { innerType?: ZodTypeAny; schema?: ZodTypeAny };
    const inner = def.innerType ?? def.schema;
    if (!inner) return node;
    node = inner;
  }
}
