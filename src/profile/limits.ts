/**
 * What a profile or inventory may hold. These bounds keep every later stage
 * (schema check, merge, templates, plans) linear in the size of the input
 * files: no alias bomb, no nesting deep enough to exhaust the stack, no file
 * that is a device or too big to hold in memory.
 */

/** Keys that would reach an object's prototype machinery when data is used as a JavaScript object. */
export const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

export function forbiddenKeyMessage(key: string): string {
  return `key ${JSON.stringify(key)} is not allowed (__proto__, constructor and prototype are reserved names)`;
}

export const LIMITS = {
  /** Largest profile file in bytes. */
  profileBytes: 4 * 1024 * 1024,
  /** Largest inventory file in bytes (a 100,000-machine inventory is about 15 MB). */
  inventoryBytes: 64 * 1024 * 1024,
  /** Deepest nesting of maps and lists (the root map is level 1). */
  depth: 64,
  /** Values that aliases may expand to, over a whole file. */
  aliasValues: 1_000_000,
  /** Longest string value, in characters. */
  stringLength: 1024 * 1024,
  /** Longest key, in characters. */
  keyLength: 1024,
  /** Most keys in one map. */
  mapKeys: 10_000,
  /** Longest chain of `extends` from a profile to its farthest ancestor. */
  extendsDepth: 32,
} as const;
