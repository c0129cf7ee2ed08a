/**
 * Lookups over the one intermediate network model (its types are records in
 * src/core/network.ts, cloud-init `network_state` style): interpret.ts builds
 * the model from a validated v2 config and every renderer reads only it, so a
 * feature is parsed once and rendered six ways.
 */
import type { Iface, Match, NetworkModel } from '../core/network.js';
import { SECTION_OF } from '../core/network.js';
import { GhostprepError } from '../util/errors.js';

export function byId(model: NetworkModel, id: string): Iface | undefined {
  return model.interfaces.find((i) => i.id === id);
}

/** The name a renderer must know; throws NetworkRenderError naming the renderer and the fix. */
export function requireName(iface: Iface, renderer: string): string {
  if (iface.name !== undefined) return iface.name;
  throw new NetworkRenderError(
    `${SECTION_OF[iface.kind]}/${iface.id}: renderer ${renderer} needs a kernel interface name, ` +
      `but this interface is matched by ${describeMatch(iface.match)} without set-name; add set-name (for example set-name: ${iface.id})`,
  );
}

export function describeMatch(match: Match | undefined): string {
  if (!match) return 'nothing';
  const parts: string[] = [];
  if (match.macaddress) parts.push(`macaddress ${match.macaddress}`);
  if (match.driver) parts.push(`driver ${match.driver}`);
  if (match.name) parts.push(`name ${match.name}`);
  return parts.join(' and ');
}


/** The configuration cannot be expressed in the chosen renderer's format. */
export class NetworkRenderError extends GhostprepError {}
