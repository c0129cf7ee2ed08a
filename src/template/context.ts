/**
 * Template data per machine (one flat, documented structure, like warewulf's):
 *   machine  inventory entry + hostname, fqdn, machineId, sshHostKeys
 *   site     profile.site        profile  {name}
 *   distro   {id, versionId, family}   vars  profile vars < inventory vars < machine vars
 * and the rendering of every string of a profile with it.
 */
import type { Distro } from '../distro/detect.js';
import type { Origins } from '../profile/merge.js';
import { toPointer } from '../profile/source.js';
import type { MachineEntry } from '../profile/types.js';
import { renderValue, TemplateError } from './render.js';

export interface TemplateContext {
  machine: Record<string, unknown> & { name: string; hostname: string; fqdn: string; machineId: string; sshHostKeys: Record<string, string> };
  site: Record<string, unknown>;
  profile: { name: string };
  distro: { id: string; versionId: string; family: string; name: string };
  vars: Record<string, unknown>;
}

export const UNKNOWN_DISTRO: Distro = { id: 'unknown', idLike: [], versionId: '', name: 'unknown', family: 'unknown', major: undefined };

export function distroData(d: Distro): TemplateContext['distro'] {
  return { id: d.id, versionId: d.versionId, family: d.family, name: d.name };
}

/** Keys whose strings are rendered later, by the operation that uses them, with its own template name. */
const RENDER_LATER = [/^\/files\/\d+\/content$/];

export interface RenderProblem { readonly pointer: string; readonly message: string }

/**
 * Render every string leaf of `value` (a resolved profile) with `ctx`.
 * Problems carry the pointer of the string, to be located through origins.
 */
export function renderTree(value: unknown, ctx: TemplateContext, origins: Origins, problems: RenderProblem[], at: string[] = []): unknown {
  if (typeof value === 'string') {
    const pointer = toPointer(at);
    if (RENDER_LATER.some((re) => re.test(pointer))) return value;
    try {
      return renderValue(value, ctx, pointer);
    } catch (err) {
      const e = err as TemplateError;
      problems.push({ pointer, message: e instanceof TemplateError ? `template: ${e.detail}${e.line > 1 ? ` (line ${e.line} of the value)` : ''}` : String(err) });
      return value;
    }
  }
  if (Array.isArray(value)) return value.map((v, i) => renderTree(v, ctx, origins, problems, [...at, String(i)]));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = renderTree(v, ctx, origins, problems, [...at, k]);
    return out;
  }
  return value;
}

export function baseMachineData(entry: MachineEntry): Record<string, unknown> {
  const { vars: _v, network: _n, ...rest } = entry;
  return { ...rest };
}
