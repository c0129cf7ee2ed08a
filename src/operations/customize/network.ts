import { planNetwork } from '../../network/index.js';
import type { CustomizeOperation as Operation } from '../../core/operation.js';

/** Network configuration in the format the guest reads, with the master's conflicting files removed. */
export const networkOperation: Operation = {
  name: 'network',
  kind: 'customize',
  description: 'render the network config for the guest\'s renderer; remove the master\'s conflicting files',
  defaultEnabled: true,
  order: 70,
  guests: ['linux'],
  async plan({ guest, distro, profile, identity, renderOnly }) {
    if (!profile.network) return [];
    const chosen = profile.networkRenderer && profile.networkRenderer !== 'auto' ? profile.networkRenderer : undefined;
    // With no guest to look at, show netplan's rendering unless the profile forces one.
    const forced = chosen ?? (renderOnly ? 'netplan' : undefined);
    const plan = await planNetwork({ config: profile.network, distro, reader: guest, renderer: forced, machineId: identity.machineId, renderOnly });
    if (!identity.pending) return plan.changes;
    // connection UUIDs come from a machine-id generated at apply: their final bytes are not known yet
    return plan.changes.map((c) => (c.op === 'write' && /^\s*uuid\s*=/im.test(c.content.toString('utf8')) ? { ...c, pending: true } : c));
  },
};
