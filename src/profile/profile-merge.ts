/**
 * Deep merge with provenance: maps merge key by key, lists and scalars
 * replace. Every JSON pointer of the result remembers the source file that
 * set it, so an error found after merging (or after rendering templates)
 * still points at the right file, line and column.
 *
 * The merge writes only own properties of prototype-free maps, and refuses
 * the reserved keys (__proto__, constructor, prototype) whatever it is given:
 * no input can reach Object.prototype through it. The loader refuses those
 * keys with a location before any merge; here they are a programming error.
 */
import type { SourceFile } from '../core/machine.js';
import { FORBIDDEN_KEYS } from './limits.js';
import { toPointer, pointerSegments } from './pointer.js';
import type { Origin, Origins, Traced } from '../core/machine.js';

/** A reserved key given to the merge (the loader should have refused it with a location). */
export class ForbiddenKeyError extends Error {
  constructor(readonly key: string, readonly pointer: string) {
    super(`key ${JSON.stringify(key)} at ${pointer || '/'} is not allowed (__proto__, constructor and prototype are reserved names)`);
    this.name = 'ForbiddenKeyError';
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkKey(key: string, at: readonly string[]): void {
  if (FORBIDDEN_KEYS.has(key)) throw new ForbiddenKeyError(key, toPointer(at));
}

/** An own, enumerable, writable property: never a setter, never the prototype. */
function put(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, writable: true, enumerable: true, configurable: true });
}

/** A new empty map without a prototype. */
export function emptyMap(): Record<string, unknown> {
  return Object.create(null) as Record<string, unknown>;
}

/** A deep copy in which every map is prototype-free; reserved keys are refused. */
export function cloneData<T>(value: T, at: readonly string[] = []): T {
  return copy(value, undefined, at) as T;
}

interface Path { readonly up: Path | undefined; readonly key: string }

function copy(value: unknown, path: Path | undefined, at: readonly string[]): unknown {
  if (Array.isArray(value)) return value.map((v, i) => copy(v, { up: path, key: String(i) }, at));
  if (isPlainObject(value)) {
    const out = emptyMap();
    for (const [k, v] of Object.entries(value)) {
      const here: Path = { up: path, key: k };
      if (FORBIDDEN_KEYS.has(k)) checkKey(k, [...at, ...keysOf(here)]);
      put(out, k, copy(v, here, at));
    }
    return out;
  }
  return value;
}

function keysOf(path: Path | undefined): string[] {
  const keys: string[] = [];
  for (let p = path; p; p = p.up) keys.push(p.key);
  return keys.reverse();
}

/** Freeze a tree and everything in it, so that no stage after the merge can change what another stage reads. */
export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/** Record the origin of every node of `value`, mounted at `at`, read from `source` at `from`. */
export function recordOrigins(origins: Origins, value: unknown, at: string[], source: SourceFile, from: string[]): void {
  origins.set(toPointer(at), { source, pointer: toPointer(from) });
  if (Array.isArray(value)) value.forEach((v, i) => recordOrigins(origins, v, [...at, String(i)], source, [...from, String(i)]));
  else if (isPlainObject(value)) for (const [k, v] of Object.entries(value)) recordOrigins(origins, v, [...at, k], source, [...from, k]);
}

function dropOrigins(origins: Origins, at: string[]): void {
  const prefix = toPointer(at);
  for (const k of [...origins.keys()]) if (k === prefix || k.startsWith(prefix + '/')) origins.delete(k);
}

/** The map at `at` inside `root`, through own properties only. */
function mapAt(root: Record<string, unknown>, at: readonly string[]): Record<string, unknown> {
  let o = root;
  for (const k of at) {
    const next = Object.hasOwn(o, k) ? o[k] : undefined;
    if (!isPlainObject(next)) throw new Error(`merge: no map at ${toPointer(at)}`);
    o = next;
  }
  return o;
}

/** Merge `over` (from `source`, read at `from`) onto `base.value` at `at`, in place. */
export function mergeInto(base: Traced<Record<string, unknown>>, over: unknown, source: SourceFile, from: string[] = [], at: string[] = []): void {
  if (!isPlainObject(over)) return;
  const target = mapAt(base.value, at);
  for (const [k, v] of Object.entries(over)) {
    const here = [...at, k];
    checkKey(k, here);
    const current = Object.hasOwn(target, k) ? target[k] : undefined;
    if (isPlainObject(v) && isPlainObject(current)) {
      base.origins.set(toPointer(here), { source, pointer: toPointer([...from, k]) });
      mergeInto(base, v, source, [...from, k], here);
    } else {
      dropOrigins(base.origins, here);
      put(target, k, cloneData(v, here));
      recordOrigins(base.origins, v, here, source, [...from, k]);
    }
  }
}

/**
 * `base` with `over` (from `source`, read at `from`) merged on top, as a new
 * deeply frozen tree; `base` is left as it is (it may be shared and frozen).
 */
export function overlay(base: Traced<Record<string, unknown>>, over: unknown, source: SourceFile, from: string[] = []): Traced<Record<string, unknown>> {
  const t: Traced<Record<string, unknown>> = { value: cloneData(base.value), origins: new Map(base.origins) };
  mergeInto(t, over, source, from);
  deepFreeze(t.value);
  return t;
}

/** The origin of a pointer: the deepest recorded ancestor, extended by the rest of the path. */
export function originOf(origins: Origins, pointer: string): Origin | undefined {
  const segs = pointerSegments(pointer);
  for (let n = segs.length; n >= 0; n--) {
    const o = origins.get(toPointer(segs.slice(0, n)));
    if (o) return { source: o.source, pointer: o.pointer + toPointer(segs.slice(n)) };
  }
  return undefined;
}
