/**
 * From loaded files to machines: each inventory entry gets its resolved
 * profile (extends + machine overrides, with provenance) and its template
 * data; `renderMachine` renders every template string of it and checks the
 * rendered values, locating each problem in the file that wrote the value.
 */
import type { Distro } from '../distro/detect.js';
import { fqdnOf } from '../identity/hostname.js';
import { ExtendsCycleError, profileRef, resolveProfile, type LoadedConfig } from '../profile/config.js';
import { originOf, overlay, type Traced } from '../profile/profile-merge.js';
import { placeIn, toPointer, type SourceFile } from '../profile/source.js';
import type { Inventory, MachineEntry, Profile } from '../profile/types.js';
import type { Diagnostic } from '../report/diagnostics.js';
import { distroData, machineData, renderTree, substitutionAt, UNKNOWN_DISTRO, type RenderProblem, type TemplateContext } from '../template/context.js';
import { independentOfIdentity } from '../template/render.js';

export interface PreparedMachine {
  readonly index: number;
  readonly name: string;
  readonly entry: MachineEntry;
  readonly profileName: string;
  readonly traced: Traced<Record<string, unknown>>;
  readonly vars: Record<string, unknown>;
  readonly inventory: SourceFile;
}

export interface MachineIdentityData {
  readonly machineId: string;
  readonly sshHostKeys: Record<string, string>;
}

export interface RenderedMachine {
  readonly prepared: PreparedMachine;
  readonly profile: Profile;
  readonly hostname: string;
  readonly fqdn: string;
  readonly context: TemplateContext;
  readonly diagnostics: Diagnostic[];
}

export function prepareFleet(config: LoadedConfig): { machines: PreparedMachine[]; diagnostics: Diagnostic[] } {
  const diagnostics: Diagnostic[] = [];
  const machines: PreparedMachine[] = [];
  const inv = config.inventory;
  if (!inv) return { machines, diagnostics };
  const resolved = new Map<string, Traced<Record<string, unknown>> | null>();
  const resolveOnce = (name: string): Traced<Record<string, unknown>> | null => {
    if (!resolved.has(name)) {
      try {
        resolved.set(name, config.profiles.has(name) ? resolveProfile(config.profiles, name) : null);
      } catch (err) {
        if (!(err instanceof ExtendsCycleError)) throw err;
        diagnostics.push(placeIn(err.source, { severity: 'error', path: err.pointer, message: err.message }));
        resolved.set(name, null);
      }
    }
    return resolved.get(name)!;
  };
  inv.data.machines.forEach((entry, index) => {
    if (!entry || typeof entry.name !== 'string') return;
    const ref = profileRef(inv.data, entry, index);
    if (!ref.name) return;
    const base = resolveOnce(ref.name);
    if (!base) return;
    const overrides: Record<string, unknown> = {};
    if (entry.hostname !== undefined) overrides.hostname = entry.hostname;
    if (entry.network !== undefined) overrides.network = entry.network;
    // Machines without overrides share their profile's resolved tree (read-only from here on):
    // a private deep copy per machine was most of the memory and GC time of a 10,000-machine run.
    let traced = base;
    if (Object.keys(overrides).length) {
      traced = overlay(base, overrides, inv.source, ['machines', String(index)]);
    }
    const vars = { ...(traced.value.vars as object ?? {}), ...(inv.data.defaults?.vars ?? {}), ...(inv.data.vars ?? {}), ...(entry.vars ?? {}) };
    machines.push({ index, name: entry.name, entry, profileName: ref.name, traced, vars, inventory: inv.source });
  });
  return { machines, diagnostics };
}

/**
 * Turn a problem at a pointer of the resolved profile into a located diagnostic.
 * A rendered value that is exactly one substitution of an inventory value
 * (`addresses: ["{{machine.ip}}"]`, `via: "{{vars.gw}}"`, also through a site or
 * hostname template that is itself one substitution) is reported where that value
 * is written (the inventory line of the machine's ip), naming the template that
 * used it; any other value, where the profile (or the inventory override) wrote it.
 */
export function locateProblem(m: PreparedMachine, pointer: string, message: string, severity: 'error' | 'warning' = 'error', key = false): Diagnostic {
  if (!key) {
    const used = substitutionAt(m.traced.value, pointer);
    const place = used && placeOfData(m, used, 0);
    // values of the inventory (machine entries, inventory vars): a profile value stays where the profile uses it
    if (place && place.source === m.inventory) {
      const template = originOf(m.traced.origins, pointer);
      const at = template ? placeIn(template.source, { severity, path: template.pointer, message: '' }) : undefined;
      const by = at ? ` (used as {{${used.join('.')}}} at ${at.file}:${at.line}:${at.col}, ${pointer})` : ` (used as {{${used.join('.')}}} at ${pointer})`;
      return placeIn(place.source, { severity, path: place.pointer, message: message + by });
    }
  }
  return locateTemplateProblem(m, pointer, message, severity, key);
}

/** A problem of the template string at `pointer` itself (a template error): always placed at the string. */
function locateTemplateProblem(m: PreparedMachine, pointer: string, message: string, severity: 'error' | 'warning' = 'error', key = false): Diagnostic {
  const origin = originOf(m.traced.origins, pointer);
  if (!origin) return { severity, path: pointer, message: `machine ${m.name}: ${message}` };
  return placeIn(origin.source, { severity, path: origin.pointer, message }, { key });
}

interface Place { readonly source: SourceFile; readonly pointer: string }

const own = (o: unknown, k: string): boolean => o !== null && typeof o === 'object' && Object.hasOwn(o, k);

/** Where a pointer of the resolved profile is written, following whole-value substitutions. */
function placeOfPointer(m: PreparedMachine, pointer: string, depth = 0): Place | undefined {
  const used = depth < 8 ? substitutionAt(m.traced.value, pointer) : undefined;
  const place = used && placeOfData(m, used, depth + 1);
  if (place) return place;
  const origin = originOf(m.traced.origins, pointer);
  return origin && { source: origin.source, pointer: origin.pointer };
}

/** Where a value of the template data (machine.ip, vars.rack, site.dns.0) is written; undefined when computed. */
function placeOfData(m: PreparedMachine, data: readonly string[], depth: number): Place | undefined {
  const [root, key, ...rest] = data;
  if (key === undefined) return undefined;
  const inInventory = (...segs: string[]): Place => ({ source: m.inventory, pointer: toPointer(segs) });
  switch (root) {
    case 'machine':
      if (key === 'hostname') return placeOfPointer(m, toPointer(['hostname', ...rest]), depth);
      if (key === 'vars' || key === 'network' || key === 'fqdn' || key === 'machineId' || key === 'sshHostKeys') return undefined;
      return key === 'name' || own(m.entry, key) ? inInventory('machines', String(m.index), key, ...rest) : undefined;
    case 'vars': {
      // the layers of `vars`, highest first (see prepareFleet)
      const inv = m.inventory.data as Partial<Inventory> | undefined;
      if (own(m.entry.vars, key)) return inInventory('machines', String(m.index), 'vars', key, ...rest);
      if (own(inv?.vars, key)) return inInventory('vars', key, ...rest);
      if (own(inv?.defaults?.vars, key)) return inInventory('defaults', 'vars', key, ...rest);
      if (!own(m.traced.value.vars, key)) return undefined;
      const origin = originOf(m.traced.origins, toPointer(['vars', key, ...rest]));
      return origin && { source: origin.source, pointer: origin.pointer };
    }
    case 'site':
      return placeOfPointer(m, toPointer(['site', key, ...rest]), depth);
    default:
      return undefined;
  }
}

const PLACEHOLDER_IDENTITY: MachineIdentityData = { machineId: '', sshHostKeys: {} };

/**
 * `plan` / `apply` render a machine twice: once to resolve its identity (which
 * needs the rendered profile), then with that identity and the guest's
 * distribution. (Validation renders it before, without keeping the result: see
 * checkSlice.) When no template
 * string of its profile can see `machine.machineId`, `machine.sshHostKeys` or
 * `distro` (decided once per profile tree, see independentOfIdentity), the first
 * result holds for any identity and distro, and a later call only gets a fresh
 * template context (for the files rendered later, which may use them).
 */
interface CachedRender {
  readonly result: RenderedMachine;
  readonly identity: MachineIdentityData;
  readonly distro: TemplateContext['distro'];
}
const renders = new WeakMap<PreparedMachine, CachedRender>();
const identityDependent = new WeakMap<object, boolean>();

/** Whether any template string of a resolved profile may read the identity or the distro (files' content: rendered later, not here). */
function dependsOnIdentity(raw: Record<string, unknown>): boolean {
  let dep = identityDependent.get(raw);
  if (dep === undefined) {
    const walk = (v: unknown, skipContent: boolean): boolean => {
      if (typeof v === 'string') return v.includes('{{') && !independentOfIdentity(v);
      if (Array.isArray(v)) return v.some((x) => walk(x, skipContent));
      if (v && typeof v === 'object') return Object.entries(v).some(([k, x]) => !(skipContent && k === 'content') && walk(x, false));
      return false;
    };
    dep = Object.entries(raw).some(([k, v]) => (k === 'files' && Array.isArray(v) ? v.some((f) => walk(f, true)) : walk(v, false)));
    identityDependent.set(raw, dep);
  }
  return dep;
}

const sameIdentity = (a: MachineIdentityData, b: MachineIdentityData): boolean =>
  a.machineId === b.machineId && JSON.stringify(a.sshHostKeys) === JSON.stringify(b.sshHostKeys);
const sameDistro = (a: TemplateContext['distro'], b: TemplateContext['distro']): boolean =>
  a.id === b.id && a.versionId === b.versionId && a.family === b.family && a.name === b.name;

function plainContext(m: PreparedMachine, site: Record<string, unknown>, hostname: string, fqdn: string, identity: MachineIdentityData, distro: TemplateContext['distro']): TemplateContext {
  return {
    machine: machineData(m.entry, { name: m.name, hostname, fqdn, machineId: identity.machineId, sshHostKeys: identity.sshHostKeys }),
    site,
    profile: { name: m.profileName },
    distro,
    vars: m.vars,
  };
}

/** `keep: false`: do not remember this render for a later call (validation: see checkSlice). */
export function renderMachine(m: PreparedMachine, identity: MachineIdentityData = PLACEHOLDER_IDENTITY, distro: Distro = UNKNOWN_DISTRO, keep = true): RenderedMachine {
  const d = distroData(distro);
  const cached = renders.get(m);
  if (cached && (!dependsOnIdentity(m.traced.value) || (sameIdentity(cached.identity, identity) && sameDistro(cached.distro, d)))) {
    const r = cached.result;
    // the last render a run makes carries the real identity: forget this machine, memory stays flat
    if (identity !== PLACEHOLDER_IDENTITY && (identity.machineId || Object.keys(identity.sshHostKeys).length)) renders.delete(m);
    return { ...r, context: plainContext(m, r.context.site, r.hostname, r.fqdn, identity, d) };
  }
  const result = renderFresh(m, identity, d);
  if (keep) renders.set(m, { result, identity, distro: d });
  return result;
}

function renderFresh(m: PreparedMachine, identity: MachineIdentityData, distro: TemplateContext['distro']): RenderedMachine {
  const problems: RenderProblem[] = [];
  const raw = m.traced.value;
  const ctx = plainContext(m, (raw.site as Record<string, unknown>) ?? {}, '', '', identity, distro);
  // Pass 1: site and hostname, which the rest may use (machine.fqdn).
  ctx.site = renderTree(raw.site ?? {}, ctx, m.traced.origins, problems, ['site']) as Record<string, unknown>;
  const hostnameTemplate = typeof raw.hostname === 'string' ? raw.hostname : '{{machine.name}}';
  const renderedHostname = renderTree(hostnameTemplate, ctx, m.traced.origins, problems, ['hostname']);
  // `hostname: "{{site.dns}}"` keeps the list (a whole-value template): a hostname is text
  const hostnameIsText = renderedHostname === null || typeof renderedHostname !== 'object';
  if (!hostnameIsText) problems.push({ pointer: '/hostname', message: `template: ${hostnameTemplate.trim()} is ${Array.isArray(renderedHostname) ? 'a list' : 'a map'}, where text is needed` });
  const hostname = hostnameIsText ? String(renderedHostname) : hostnameTemplate;
  const fqdn = fqdnOf(hostname, typeof ctx.site.domain === 'string' ? ctx.site.domain : undefined);
  ctx.machine.hostname = hostname;
  ctx.machine.fqdn = fqdn;
  // Pass 2: everything.
  const profile = renderTree(raw, ctx, m.traced.origins, problems) as unknown as Profile;
  const diagnostics = problems.map((p) => locateTemplateProblem(m, p.pointer, p.message));
  return { prepared: m, profile, hostname, fqdn, context: ctx, diagnostics };
}
