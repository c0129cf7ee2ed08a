/**
 * Deep merge with provenance: maps merge key by key, lists and scalars
 * replace. Every JSON pointer of the result remembers the source file that
 * set it, so an error found after merging (or after rendering templates)
 * still points at the right file, line and column.
 */
import type { SourceFile } from './source.js';
import { toPointer, pointerSegments } from './source.js';

/** Where each value came from: source file plus the pointer inside it. */
export interface Origin { readonly source: SourceFile; readonly pointer: string }
export type Origins = Map<string, Origin>;

export interface Traced<T = unknown> { value: T; origins: Origins }

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
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

/** Merge `over` (from `source`, read at `from`) onto `base.value` at `at`, in place. */
export function mergeInto(base: Traced<Record<string, unknown>>, over: unknown, source: SourceFile, from: string[] = [], at: string[] = []): void {
  const target = at.reduce<Record<string, unknown>>((o, k) => o[k] as Record<string, unknown>, base.value);
  if (!isPlainObject(over)) return;
  for (const [k, v] of Object.entries(over)) {
    const here = [...at, k];
    if (isPlainObject(v) && isPlainObject(target[k])) {
      base.origins.set(toPointer(here), { source, pointer: toPointer([...from, k]) });
      mergeInto(base, v, source, [...from, k], here);
    } else {
      dropOrigins(base.origins, here);
      target[k] = structuredClone(v);
      recordOrigins(base.origins, v, here, source, [...from, k]);
    }
  }
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
