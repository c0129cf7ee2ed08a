/**
 * unattend.xml per machine, from a Handlebars template
 * (templates/windows/unattend.xml.hbs, or the profile's windows.template).
 * Its own Handlebars instance WITH escaping: every value lands in XML, and
 * Handlebars' HTML escaping (& < > " ' ` =) yields valid XML character
 * references. Strict: an unknown variable is an error naming the template.
 * Network settings: see network.ts (the profile's network model, or
 * windows.network).
 */
import path from 'node:path';
import type { RenderedMachine } from '../core/machine.js';
import { originOf } from '../profile/profile-merge.js';
import { explain, loadTemplateFile, TEMPLATE_DIR } from '../template/render.js';
import { createStrictHandlebars } from '../template/strict-runtime.js';
import { GhostprepError } from '../util/errors.js';
import { unattendInterfaces } from './network.js';
import { computerNameOf, windowsProfile, windowsTimeZone } from './settings.js';

export const DEFAULT_UNATTEND_TEMPLATE = 'windows/unattend.xml.hbs';

// own properties of the data only, text only, no log helper: like every profile template (strict-runtime.ts)
const hb = createStrictHandlebars();

/** The data the template sees (documented in docs/windows.md). */
export function unattendData(r: RenderedMachine, arch: string): Record<string, unknown> {
  const w = windowsProfile(r.profile);
  const site = r.profile.site ?? {};
  const interfaces = unattendInterfaces(w.network, r.profile.network);
  const dnsDomain = w.dnsDomain ?? site.domain ?? '';
  return {
    machine: r.context.machine,
    site: r.context.site,
    vars: r.context.vars,
    arch,
    computerName: computerNameOf(r),
    timezone: w.timezone ?? windowsTimeZone(r.profile.timezone ?? site.timezone) ?? '',
    registeredOwner: w.registeredOwner ?? '',
    registeredOrganization: w.registeredOrganization ?? '',
    dnsDomain,
    dnsClient: Boolean(dnsDomain) || interfaces.length > 0,
    interfaces,
    dnsSuffixes: [...new Set(interfaces.flatMap((i) => i.search))].map((name, n) => ({ key: n + 1, name })),
    firstLogonCommands: (w.firstLogonCommands ?? []).map((c, n) => ({ order: n + 1, run: c.run, description: c.description ?? `ghostprep ${n + 1}` })),
    oobe: w.oobe ?? null,
    locale: w.locale ?? null,
  };
}

function templateFor(r: RenderedMachine): { file: string; text: string } {
  const name = windowsProfile(r.profile).template;
  if (!name) return loadTemplateFile(DEFAULT_UNATTEND_TEMPLATE, [TEMPLATE_DIR]);
  const origin = originOf(r.prepared.traced.origins, '/windows/template');
  const dir = origin ? path.dirname(path.resolve(origin.source.file)) : process.cwd();
  return loadTemplateFile(name, [path.join(dir, 'templates'), path.join(dir, '..', 'templates'), dir, TEMPLATE_DIR]);
}

export function renderUnattend(r: RenderedMachine, arch: string): string {
  const t = templateFor(r);
  try {
    return hb.compile(t.text, { strict: true })(unattendData(r, arch));
  } catch (err) {
    const e = explain(err as Error, t.text, t.file);
    throw new GhostprepError(`${e.template}:${e.line}:${e.col}: ${e.detail}`, { cause: err });
  }
}
