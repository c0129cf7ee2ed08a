/**
 * JSON Schema validation (ajv, draft 2020-12) turned into located
 * diagnostics. Messages are rewritten for people: "unknown key "hostnme"
 * (did you mean "hostname"?)" rather than ajv's "must NOT have additional
 * properties".
 *
 * The validators normally come precompiled: `npm run build` runs
 * scripts/compile-schemas.mjs, which writes ajv's standalone code for every
 * schema, with the sha256 of each schema file, to validators.precompiled.mjs
 * beside this file. When any schema file no longer has its hash (edited, not
 * rebuilt), or when that module is absent (a bare tsc), every schema is
 * compiled by ajv here at run time as before; only then is ajv loaded.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import type { ErrorObject, ValidateFunction } from 'ajv';
import type Ajv2020Type from 'ajv/dist/2020.js';
import type { Diagnostic } from '../core/diagnostic.js';
import { suggest } from '../util/suggest.js';

// ajv and ajv-formats are CommonJS modules whose ESM interop types disagree with NodeNext: load them with require.
const require = createRequire(import.meta.url);
type Ajv = Ajv2020Type.default;

export const SCHEMA_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../schemas');

export type SchemaName = 'profile' | 'inventory' | 'report' | 'network-v2';
const SCHEMA_NAMES: readonly SchemaName[] = ['profile', 'inventory', 'report', 'network-v2'];

/** What scripts/compile-schemas.mjs generates. */
interface Precompiled {
  validators: Partial<Record<SchemaName, ValidateFunction>>;
  sha256: Partial<Record<SchemaName, string>>;
}

// Optional (absent after a bare tsc), hence no static import. Only its own absence is tolerated:
// anything else wrong with it (a broken build) is an error.
const PRECOMPILED = './validators.precompiled.mjs';
const precompiledModule: Precompiled | undefined = await import(PRECOMPILED).catch((err: NodeJS.ErrnoException) => {
  if (err.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes(PRECOMPILED.slice(2))) return undefined;
  throw err;
}) as Precompiled | undefined;
let precompiled = precompiledModule;

let ajv: Ajv | undefined;
const compiled = new Map<SchemaName, ValidateFunction>();

/**
 * Test hook (test/unit/schema-precompiled.test.ts), not for other callers: validator() uses `mod`
 * as the precompiled module (null: none, everything compiled at run time; no argument: the built
 * one again) and forgets the validators it has handed out so far.
 */
export function usePrecompiledForTests(mod: Precompiled | null = precompiledModule ?? null): void {
  precompiled = mod ?? undefined;
  compiled.clear();
}

function schemaId(name: SchemaName): string {
  return `https://ghostprep.dev/schemas/${name}.schema.json`;
}

function instance(): Ajv {
  if (ajv) return ajv;
  const Ajv2020 = (require('ajv/dist/2020.js') as { default: new (o: object) => Ajv }).default;
  const addFormats = (require('ajv-formats') as { default: (a: Ajv) => void }).default;
  // scripts/compile-schemas.mjs compiles with the same options: keep them in step
  ajv = new Ajv2020({ allErrors: true, strict: false, verbose: true });
  addFormats(ajv);
  for (const name of SCHEMA_NAMES) {
    try {
      ajv.addSchema(JSON.parse(readFileSync(path.join(SCHEMA_DIR, `${name}.schema.json`), 'utf8')));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  return ajv;
}

/**
 * Whether the precompiled module was compiled from the schema files as they are
 * now: all of them, decided once per module. They were compiled together in one
 * ajv instance, so one schema's code may hold another's (a `$ref` across files):
 * a single edited schema sends every schema to the run-time compile.
 */
const current = new WeakMap<Precompiled, boolean>();
function precompiledIsCurrent(mod: Precompiled): boolean {
  let ok = current.get(mod);
  if (ok === undefined) {
    ok = SCHEMA_NAMES.every((name) => {
      let text: Buffer | undefined;
      try {
        text = readFileSync(path.join(SCHEMA_DIR, `${name}.schema.json`));
      } catch {
        text = undefined; // the run-time path reports a missing schema
      }
      const want = mod.sha256[name];
      return text === undefined ? want === undefined : want === createHash('sha256').update(text).digest('hex');
    });
    current.set(mod, ok);
  }
  return ok;
}

/** The precompiled validator of `name` when the module was compiled from the schema files as they are now. */
function precompiledValidator(name: SchemaName): ValidateFunction | undefined {
  const fn = precompiled?.validators[name];
  return fn && precompiledIsCurrent(precompiled!) ? fn : undefined;
}

export function validator(name: SchemaName): ValidateFunction {
  let fn = compiled.get(name);
  if (!fn) {
    fn = precompiledValidator(name);
    if (!fn) {
      const v = instance().getSchema(schemaId(name));
      if (!v) throw new Error(`schema ${name} is not installed (${SCHEMA_DIR})`);
      fn = v as ValidateFunction;
    }
    compiled.set(name, fn);
  }
  return fn;
}

/** Validate data against a schema; diagnostics carry pointers relative to `prefix`. */
export function validateAgainst(name: SchemaName, data: unknown, prefix = ''): Array<Omit<Diagnostic, 'file' | 'line' | 'col'> & { key?: boolean }> {
  const fn = validator(name);
  if (fn(data)) return [];
  return simplify(fn.errors ?? []).map((e) => withoutSecret(e, toDiagnostic(e, prefix)));
}

/**
 * Drop the noise of oneOf/anyOf: when a oneOf fails at a place, its branches'
 * own errors at that same place say nothing more (deeper errors are kept).
 */
function simplify(errors: readonly ErrorObject[]): ErrorObject[] {
  const alternatives = errors.filter((e) => e.keyword === 'oneOf' || e.keyword === 'anyOf');
  // propertyNames: ajv adds a summary error beside the one that names the key
  const named = errors.some((e) => e.propertyName !== undefined);
  return errors.filter((e) => !(named && e.keyword === 'propertyNames')).filter((e) => !alternatives.some((alt) =>
    alt !== e && e.instancePath === alt.instancePath && e.schemaPath.startsWith(alt.schemaPath + '/')));
}

/** Keys whose values are secrets: a message about one says what is wrong, never the value. */
const SECRET_KEYS: ReadonlySet<string> = new Set(['passwordHash']);

function withoutSecret<D extends { message: string }>(e: ErrorObject, d: D): D {
  if (!SECRET_KEYS.has(e.instancePath.slice(e.instancePath.lastIndexOf('/') + 1))) return d;
  const message = e.keyword === 'pattern'
    ? 'is not valid here: not a crypt(3) hash ("$6$…", "$y$…") or a lock ("!", "*"): a plaintext password, or a hash with ":", spaces or control characters? (value not shown)'
    : e.keyword === 'type' ? `must be ${article(String((e.params as { type?: unknown }).type))} (value not shown)` : `is not valid here: ${e.keyword} (value not shown)`;
  return { ...d, message };
}

function show(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? s.slice(0, 57) + '...' : s;
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'list';
  if (typeof v === 'object') return 'map';
  return typeof v;
}

function toDiagnostic(e: ErrorObject, prefix: string): Omit<Diagnostic, 'file' | 'line' | 'col'> & { key?: boolean } {
  const at = prefix + e.instancePath;
  const p = e.params as Record<string, unknown>;
  if (e.propertyName !== undefined) {
    const key = e.propertyName.replace(/~/g, '~0').replace(/\//g, '~1');
    return { severity: 'error', path: `${at}/${key}`, key: true, message: `key ${JSON.stringify(e.propertyName)} is not valid here${e.keyword === 'pattern' ? ` (must match ${p.pattern})` : ''}` };
  }
  switch (e.keyword) {
    case 'additionalProperties': {
      const key = String(p.additionalProperty);
      const known = Object.keys((e.parentSchema as { properties?: object })?.properties ?? {});
      const hint = suggest(key, known);
      return { severity: 'error', path: `${at}/${key}`, key: true, message: `unknown key "${key}"${hint ? ` (did you mean "${hint}"?)` : known.length ? ` (allowed: ${known.join(', ')})` : ''}` };
    }
    case 'required':
      return { severity: 'error', path: at, message: `missing required key "${p.missingProperty}"` };
    case 'enum':
      return { severity: 'error', path: at, message: `${show(e.data)} is not one of: ${(p.allowedValues as unknown[]).map(String).join(', ')}` };
    case 'type':
      return { severity: 'error', path: at, message: `must be ${article(String(p.type))} (got ${typeName(e.data)} ${show(e.data)})` };
    case 'pattern':
      return { severity: 'error', path: at, message: `${show(e.data)} is not valid here (must match ${p.pattern})` };
    case 'oneOf':
    case 'anyOf': {
      const branches = (e.schema as Array<{ required?: string[]; type?: string }>);
      const req = branches.map((b) => b.required?.[0]).filter(Boolean);
      if (req.length === branches.length) return { severity: 'error', path: at, message: `needs exactly one of: ${req.join(', ')}` };
      const types = branches.map((b) => b.type).filter(Boolean);
      return { severity: 'error', path: at, message: `must be ${types.map((t) => article(t!)).join(' or ')} (got ${typeName(e.data)})` };
    }
    case 'uniqueItems':
      return { severity: 'error', path: at, message: `has duplicate items (${p.j} and ${p.i})` };
    case 'const':
      return { severity: 'error', path: at, message: `must be ${show(p.allowedValue)} (got ${show(e.data)})` };
    default:
      return { severity: 'error', path: at, message: e.message ?? e.keyword };
  }
}

function article(type: string): string {
  const names: Record<string, string> = { string: 'a string', integer: 'an integer', number: 'a number', boolean: 'true or false', object: 'a map', array: 'a list', null: 'null' };
  return type.split(',').map((t) => names[t] ?? t).join(' or ');
}
