/**
 * Loading stage: profiles and inventory files are parsed with positions,
 * schema-checked, and profiles are resolved through `extends`. Nothing runs
 * until every file has been checked; all problems are collected at once.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Diagnostic } from '../report/diagnostics.js';
import { validateSource } from '../schema/validate.js';
import { mergeInto, recordOrigins, type Traced } from './merge.js';
import { loadSource, placeIn, toPointer, type SourceFile } from './source.js';
import type { Inventory, MachineEntry, Profile } from './types.js';

export interface LoadedProfile { readonly name: string; readonly source: SourceFile; readonly data: Profile }

export interface LoadedConfig {
  readonly profiles: Map<string, LoadedProfile>;
  readonly inventory?: { source: SourceFile; data: Inventory };
  readonly diagnostics: Diagnostic[];
}

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

export function loadConfig(profileArgs: readonly string[], inventoryFile?: string): LoadedConfig {
  const diagnostics: Diagnostic[] = [];
  const profiles = new Map<string, LoadedProfile>();
  const queue = expandProfileArgs(profileArgs);
  const seenFiles = new Set<string>();
  let someProfileFailed = false;

  const addProfileFile = (file: string): LoadedProfile | undefined => {
    const abs = path.resolve(file);
    if (seenFiles.has(abs)) return [...profiles.values()].find((p) => path.resolve(p.source.file) === abs);
    seenFiles.add(abs);
    const { source, diagnostics: parseDiags } = loadSource(file);
    diagnostics.push(...parseDiags);
    if (parseDiags.some((d) => d.severity === 'error')) { someProfileFailed = true; return undefined; }
    const schemaDiags = validateSource('profile', source);
    diagnostics.push(...schemaDiags);
    const data = source.data as Profile | undefined;
    if (!data || typeof data !== 'object' || typeof data.profile !== 'string') { someProfileFailed = true; return undefined; }
    const prior = profiles.get(data.profile);
    if (prior) {
      diagnostics.push(placeIn(source, { severity: 'error', path: '/profile', message: `profile "${data.profile}" is also defined in ${prior.source.file}` }));
      return undefined;
    }
    const loaded = { name: data.profile, source, data };
    profiles.set(data.profile, loaded);
    return loaded;
  };
  for (const f of queue) addProfileFile(f);

  // Profiles named by `extends` or by the inventory but not given with -p are
  // looked up as NAME.yaml next to the file that names them.
  const findByName = (name: string, near: SourceFile): LoadedProfile | undefined => {
    const found = profiles.get(name);
    if (found) return found;
    for (const ext of ['.yaml', '.yml']) {
      const candidate = path.join(path.dirname(near.file), name + ext);
      if (existsSync(candidate)) {
        const p = addProfileFile(candidate);
        if (p?.name === name) return p;
      }
    }
    return undefined;
  };

  let inventory: LoadedConfig['inventory'];
  if (inventoryFile) {
    const { source, diagnostics: parseDiags } = loadSource(inventoryFile);
    diagnostics.push(...parseDiags);
    if (!parseDiags.some((d) => d.severity === 'error')) {
      diagnostics.push(...validateSource('inventory', source));
      const data = source.data as Inventory | undefined;
      if (data && typeof data === 'object' && Array.isArray(data.machines)) inventory = { source, data };
    }
  }

  // Resolve every reference now so that missing profiles are reported with locations.
  for (const p of [...profiles.values()]) {
    extendsList(p.data).forEach((name, i) => {
      if (!findByName(name, p.source)) {
        const at = Array.isArray(p.data.extends) ? `/extends/${i}` : '/extends';
        diagnostics.push(placeIn(p.source, { severity: 'error', path: at, message: `profile "${name}" not found (searched -p files and ${path.dirname(p.source.file)}/${name}.yaml)` }));
      }
    });
  }
  if (inventory) {
    inventory.data.machines.forEach((m, i) => {
      const { name, pointer } = profileRef(inventory!.data, m, i);
      if (name === undefined) {
        if (typeof m?.name === 'string') diagnostics.push(placeIn(inventory!.source, { severity: 'error', path: `/machines/${i}`, message: `machine "${m.name}" has no profile (set "profile" here or "defaults.profile")` }));
      } else if (!findByName(name, inventory!.source) && !someProfileFailed) {
        // (when a profile file failed to load, its own errors explain the missing name)
        diagnostics.push(placeIn(inventory!.source, { severity: 'error', path: pointer, message: `profile "${name}" not found (given: ${[...profiles.keys()].sort().join(', ') || 'none'})` }));
      }
    });
  }
  return { profiles, inventory, diagnostics };
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
  constructor(readonly cycle: string[], readonly source: SourceFile) {
    super(`extends cycle: ${cycle.join(' -> ')}`);
  }
}

/**
 * The profile with everything it extends merged underneath, in order
 * (for `extends: [a, b]`: a, then b, then the profile itself).
 */
export function resolveProfile(profiles: ReadonlyMap<string, LoadedProfile>, name: string, stack: string[] = []): Traced<Record<string, unknown>> {
  const p = profiles.get(name);
  if (!p) throw new Error(`profile "${name}" not found`);
  if (stack.includes(name)) throw new ExtendsCycleError([...stack.slice(stack.indexOf(name)), name], p.source);
  const result: Traced<Record<string, unknown>> = { value: {}, origins: new Map() };
  for (const parent of extendsList(p.data)) {
    if (!profiles.has(parent)) continue; // reported at load time
    const base = resolveProfile(profiles, parent, [...stack, name]);
    mergeInto(result, base.value, p.source);
    // keep the parents' own origins rather than pointing at the child
    for (const [k, o] of base.origins) result.origins.set(k, o);
  }
  const { extends: _drop, ...own } = p.data as unknown as Record<string, unknown>;
  mergeInto(result, own, p.source);
  recordOrigins(result.origins, undefined, [], p.source, []);
  return result;
}

export { toPointer };
