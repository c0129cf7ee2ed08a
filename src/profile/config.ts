/**
 * Loading stage: profiles and inventory files are parsed with positions,
 * schema-checked, and profiles are resolved through `extends`. Nothing runs
 * until every file has been checked; all problems are collected at once.
 */
import { existsSync, lstatSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Diagnostic } from '../core/diagnostic.js';
import { validateAgainst, type SchemaName } from '../schema/validate-schema.js';
import { LIMITS } from './limits.js';
import { deepFreeze, emptyMap, mergeInto, recordOrigins } from './profile-merge.js';
import { type Traced } from '../core/machine.js';
import { loadSource, placeIn, toPointer } from './source.js';
import { type SourceFile } from '../core/machine.js';
import type { Inventory, MachineEntry, Profile } from '../core/profile.js';

/** Validate a whole source file; diagnostics are placed in that file. */
export function validateSource(name: SchemaName, source: SourceFile): Diagnostic[] {
  return validateAgainst(name, source.data ?? {}).map(({ key, ...d }) => placeIn(source, d, { key }));
}

export interface LoadedProfile { readonly name: string; readonly source: SourceFile; readonly data: Profile }

export interface LoadedConfig {
  readonly profiles: Map<string, LoadedProfile>;
  readonly inventory?: { source: SourceFile; data: Inventory };
  readonly diagnostics: Diagnostic[];
}

/** What a profile may be called (schemas/profile.schema.json, "profile"): also what may be looked up as NAME.yaml. */
const PROFILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** Expand `-p` arguments: files as given, directories to their *.yaml / *.yml files. */
export function expandProfileArgs(args: readonly string[]): string[] {
  const out: string[] = [];
  for (const a of args) {
    if (existsSync(a) && statSync(a).isDirectory()) {
      for (const f of readdirSync(a).sort()) if (/\.ya?ml$/.test(f)) out.push(path.join(a, f));
    } else out.push(a);
  }
  return out;
}

/** The `extends` entries of a profile: each parent's name and the pointer of the entry that names it. */
function extendsEntries(p: Profile): Array<{ name: string; pointer: string }> {
  if (typeof p.extends === 'string') return [{ name: p.extends, pointer: '/extends' }];
  if (!Array.isArray(p.extends)) return [];
  return p.extends.flatMap((name, i) => (typeof name === 'string' ? [{ name, pointer: `/extends/${i}` }] : []));
}

export function loadConfig(profileArgs: readonly string[], inventoryFile?: string): LoadedConfig {
  const diagnostics: Diagnostic[] = [];
  const profiles = new Map<string, LoadedProfile>();
  const queue = expandProfileArgs(profileArgs);
  /** What loading each file (by absolute path) gave: its profile, or why it has none. */
  const files = new Map<string, { profile?: LoadedProfile; unreadable?: string; defines?: string }>();
  let someProfileFailed = false;
  /** Answers of findByName that say a file exists but cannot be read. */
  const unreadable = new Set<string>();

  /** `byName`: found by findByName, whose message at the reference says why an unreadable file is not loaded. */
  const addProfileFile = (file: string, byName = false): { profile?: LoadedProfile; unreadable?: string; defines?: string } => {
    const abs = path.resolve(file);
    const known = files.get(abs);
    if (known) return known;
    const result: { profile?: LoadedProfile; unreadable?: string; defines?: string } = {};
    files.set(abs, result);
    const { source, diagnostics: parseDiags, unreadable } = loadSource(file, 'profile');
    if (unreadable) result.unreadable = unreadable.reason;
    if (!(unreadable && byName)) diagnostics.push(...parseDiags);
    if (parseDiags.some((d) => d.severity === 'error')) { someProfileFailed = true; return result; }
    const schemaDiags = validateSource('profile', source);
    diagnostics.push(...schemaDiags);
    const data = source.data as Profile | undefined;
    if (!data || typeof data !== 'object' || typeof data.profile !== 'string') { someProfileFailed = true; return result; }
    result.defines = data.profile;
    const prior = profiles.get(data.profile);
    if (prior) {
      diagnostics.push(placeIn(source, { severity: 'error', path: '/profile', message: `profile "${data.profile}" is also defined in ${prior.source.file}` }));
      return result;
    }
    result.profile = { name: data.profile, source, data };
    profiles.set(data.profile, result.profile);
    return result;
  };
  for (const f of queue) addProfileFile(f);

  /**
   * The one way a profile named by `extends` or by the inventory is found:
   * given with -p, else NAME.yaml (or .yml) next to the file that names it.
   * Either way it is loaded like a -p file, so its own `extends` is resolved too.
   * Answers the profile, or why it is not there (for a message at the reference).
   */
  const findByName = (name: string, near: SourceFile): LoadedProfile | string => {
    const found = profiles.get(name);
    if (found) return found;
    // a name is never a path: no lookup outside the directory of the file that names it
    if (!PROFILE_NAME.test(name)) return `${JSON.stringify(name)} is not a profile name (letters, digits, ".", "_" and "-", starting with a letter or digit)`;
    const dir = path.dirname(near.file);
    for (const ext of ['.yaml', '.yml']) {
      const candidate = path.join(dir, name + ext);
      if (!existsSync(candidate) && !isLink(candidate)) continue;
      const r = addProfileFile(candidate, true);
      if (r.profile?.name === name) return r.profile;
      if (r.unreadable) {
        const why = `profile "${name}": cannot read ${candidate}: ${r.unreadable}`;
        unreadable.add(why);
        return why;
      }
      if (r.defines !== undefined) return `profile "${name}" not found (${candidate} defines profile "${r.defines}")`;
      return ''; // the file's own errors explain it
    }
    return `profile "${name}" not found (searched -p files and ${dir}/${name}.yaml)`;
  };

  let inventory: LoadedConfig['inventory'];
  if (inventoryFile) {
    const { source, diagnostics: parseDiags } = loadSource(inventoryFile, 'inventory');
    diagnostics.push(...parseDiags);
    if (!parseDiags.some((d) => d.severity === 'error')) {
      diagnostics.push(...validateSource('inventory', source));
      const data = source.data as Inventory | undefined;
      if (data && typeof data === 'object' && Array.isArray(data.machines)) inventory = { source, data };
    }
  }

  // Every `extends` entry of every profile, including those found on the way
  // (the list grows while it is walked): a grandparent found next to its
  // child is checked like any other profile. Then the profiles the inventory
  // names, and the `extends` of those it found.
  const loaded = [...profiles.values()];
  const parents = new Map<LoadedProfile, Array<{ parent: LoadedProfile; pointer: string }>>();
  let walked = 0;
  const resolveExtends = (): void => {
    for (; walked < loaded.length; walked++) {
      const p = loaded[walked]!;
      const edges: Array<{ parent: LoadedProfile; pointer: string }> = [];
      for (const { name, pointer } of extendsEntries(p.data)) {
        const found = findByName(name, p.source);
        if (typeof found !== 'string') edges.push({ parent: found, pointer });
        else if (found) diagnostics.push(placeIn(p.source, { severity: 'error', path: pointer, message: found }));
      }
      parents.set(p, edges);
      if (profiles.size > loaded.length) loaded.push(...[...profiles.values()].slice(loaded.length));
    }
  };
  resolveExtends();
  const machineRefs = inventory ? inventory.data.machines.map((m, i) => {
    const ref = profileRef(inventory!.data, m, i);
    return { ...ref, found: ref.name === undefined ? undefined : findByName(ref.name, inventory!.source) };
  }) : [];
  if (profiles.size > loaded.length) loaded.push(...[...profiles.values()].slice(loaded.length));
  resolveExtends();
  diagnostics.push(...extendsGraphProblems(loaded, parents));

  if (inventory) {
    inventory.data.machines.forEach((m, i) => {
      const { name, pointer } = machineRefs[i]!;
      // (a name not found when the inventory was read may have been found since, through another profile's extends)
      const found = name !== undefined && profiles.has(name) ? profiles.get(name) : machineRefs[i]!.found;
      if (name === undefined) {
        if (typeof m?.name === 'string') diagnostics.push(placeIn(inventory!.source, { severity: 'error', path: `/machines/${i}`, message: `machine "${m.name}" has no profile (set "profile" here or "defaults.profile")` }));
      } else if (typeof found === 'string' && (unreadable.has(found) || !PROFILE_NAME.test(name))) {
        diagnostics.push(placeIn(inventory!.source, { severity: 'error', path: pointer, message: found }));
      } else if (typeof found === 'string' && found && !someProfileFailed) {
        // (when a profile file failed to load, its own errors explain the missing name)
        diagnostics.push(placeIn(inventory!.source, { severity: 'error', path: pointer, message: `profile "${name}" not found (given: ${[...profiles.keys()].sort().join(', ') || 'none'})` }));
      }
    });
  }
  return { profiles, inventory, diagnostics };
}

function isLink(file: string): boolean {
  try { return lstatSync(file).isSymbolicLink(); } catch { return false; }
}

/**
 * Cycles and over-long chains in the `extends` graph, each reported once, at
 * the entry of the cycle's first-loaded profile that names the next one.
 */
function extendsGraphProblems(order: readonly LoadedProfile[], parents: ReadonlyMap<LoadedProfile, ReadonlyArray<{ parent: LoadedProfile; pointer: string }>>): Diagnostic[] {
  const out: Diagnostic[] = [];
  const rank = new Map(order.map((p, i) => [p, i]));
  const reported = new Set<string>();
  const done = new Set<LoadedProfile>();
  const visit = (p: LoadedProfile, stack: LoadedProfile[]): void => {
    if (done.has(p)) return;
    const at = stack.indexOf(p);
    if (at >= 0) {
      const cycle = canonicalCycle(stack.slice(at), rank);
      const key = cycle.map((c) => c.name).join('\0');
      if (!reported.has(key)) {
        reported.add(key);
        const first = cycle[0]!;
        const next = cycle[1 % cycle.length]!;
        const entry = parents.get(first)!.find((e) => e.parent === next)!;
        out.push(placeIn(first.source, { severity: 'error', path: entry.pointer, message: cycleMessage(cycle) }));
      }
      return;
    }
    if (stack.length >= LIMITS.extendsDepth) {
      const child = stack[stack.length - 1]!;
      const entry = parents.get(child)!.find((e) => e.parent === p)!;
      out.push(placeIn(child.source, { severity: 'error', path: entry.pointer, message: `extends chain longer than ${LIMITS.extendsDepth} profiles (${stack[0]!.name} -> … -> ${child.name} -> ${p.name})` }));
      return;
    }
    for (const e of parents.get(p) ?? []) visit(e.parent, [...stack, p]);
    done.add(p);
  };
  for (const p of order) visit(p, []);
  return out;
}

/** The members of a cycle starting at the one loaded first, so that every walk names it alike. */
function canonicalCycle(members: readonly LoadedProfile[], rank: ReadonlyMap<LoadedProfile, number>): LoadedProfile[] {
  let first = 0;
  members.forEach((m, i) => { if (rank.get(m)! < rank.get(members[first]!)!) first = i; });
  return [...members.slice(first), ...members.slice(0, first)];
}

function cycleMessage(cycle: readonly { name: string }[]): string {
  return `extends cycle: ${[...cycle, cycle[0]!].map((c) => c.name).join(' -> ')}`;
}

export function extendsList(p: Profile): string[] {
  if (p.extends === undefined) return [];
  return Array.isArray(p.extends) ? p.extends.filter((e) => typeof e === 'string') : typeof p.extends === 'string' ? [p.extends] : [];
}

/** Which profile a machine uses and where that was said. */
export function profileRef(inv: Inventory, m: MachineEntry, index: number): { name?: string; pointer: string } {
  if (typeof m?.profile === 'string') return { name: m.profile, pointer: `/machines/${index}/profile` };
  if (typeof inv.defaults?.profile === 'string') return { name: inv.defaults.profile, pointer: '/defaults/profile' };
  return { pointer: `/machines/${index}` };
}

export class ExtendsCycleError extends Error {
  /** `pointer`: the `extends` entry of `source` that leads into the cycle. */
  constructor(readonly cycle: string[], readonly source: SourceFile, readonly pointer: string = '/extends') {
    super(cycleMessage(cycle.slice(0, -1).map((name) => ({ name }))));
  }
}

/**
 * The profile with everything it extends merged underneath, in order
 * (for `extends: [a, b]`: a, then b, then the profile itself). The result is
 * prototype-free and deeply frozen: it is shared by every machine of the
 * profile, and no later stage may change what another one reads.
 *
 * A cycle throws ExtendsCycleError naming it as loadConfig reports it (from
 * the member given first, at its entry naming the next member).
 */
export function resolveProfile(profiles: ReadonlyMap<string, LoadedProfile>, name: string, stack: string[] = []): Traced<Record<string, unknown>> {
  const p = profiles.get(name);
  if (!p) throw new Error(`profile "${name}" not found`);
  if (stack.includes(name)) {
    const members = stack.slice(stack.indexOf(name));
    const order = [...profiles.keys()];
    let first = 0;
    members.forEach((m, i) => { if (order.indexOf(m) < order.indexOf(members[first]!)) first = i; });
    const cycle = [...members.slice(first), ...members.slice(0, first)];
    const head = profiles.get(cycle[0]!)!;
    const next = cycle[1 % cycle.length]!;
    const entry = extendsEntries(head.data).find((e) => e.name === next);
    throw new ExtendsCycleError([...cycle, cycle[0]!], head.source, entry?.pointer);
  }
  const known = resolvedTrees.get(p);
  if (known) return known;
  const result: Traced<Record<string, unknown>> = { value: emptyMap(), origins: new Map() };
  for (const parent of extendsList(p.data)) {
    // a missing parent or a chain beyond the limit is reported at load time
    if (!profiles.has(parent) || stack.length + 1 >= LIMITS.extendsDepth) continue;
    const base = resolveProfile(profiles, parent, [...stack, name]);
    mergeInto(result, base.value, p.source);
    // keep the parents' own origins rather than pointing at the child
    for (const [k, o] of base.origins) result.origins.set(k, o);
  }
  const own = emptyMap();
  for (const [k, v] of Object.entries(p.data)) if (k !== 'extends') own[k] = v;
  mergeInto(result, own, p.source);
  recordOrigins(result.origins, undefined, [], p.source, []);
  deepFreeze(result.value);
  resolvedTrees.set(p, result);
  return result;
}

/** Resolved trees by profile: a profile reached along many `extends` paths is merged once. */
const resolvedTrees = new WeakMap<LoadedProfile, Traced<Record<string, unknown>>>();

export { toPointer };
