/**
 * From loaded files to machines: each inventory entry gets its resolved
 * profile (extends + machine overrides, with provenance) and its template
 * data; `renderMachine` renders every template string of it and checks the
 * rendered values, locating each problem in the file that wrote the value.
 */
import type { Diagnostic } from '../core/diagnostic.js';
import type { Distro } from '../core/distro.js';
import type { MachineIdentityData, PreparedMachine, RenderedMachine, TemplateContext, Traced } from '../core/machine.js';
import type { Profile } from '../core/profile.js';
import { fqdnOf } from '../identity/hostname.js';
import { ExtendsCycleError, profileRef, resolveProfile, type LoadedConfig } from '../profile/config.js';
import { overlay } from '../profile/profile-merge.js';
import { placeIn } from '../profile/source.js';
import { distroData, machineData, renderTree, UNKNOWN_DISTRO, type RenderProblem } from '../template/context.js';
import { locateTemplateProblem } from '../template/locate.js';
import { independentOfIdentity } from '../template/render.js';

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
