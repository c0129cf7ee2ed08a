import { createHash } from 'node:crypto';
import { interpret, netplanBody, networkV2 } from '../../network/index.js';
import { GuestError } from '../../util/errors.js';
import type { CustomizeOperation as Operation } from '../../core/operation.js';
import { del, exists, write } from '../util.js';

export const SEED_DIR = '/var/lib/cloud/seed/nocloud';
export const NOCLOUD_CFG = '/etc/cloud/cloud.cfg.d/99-ghostprep-nocloud.cfg';
const HEADER = '# Written by ghostprep for this clone; local changes are overwritten on the next apply.';

/**
 * The clone's cloud-init instance-id: derived from its machine-id (or, with
 * `machineId: keep`, from its inventory name), so it differs from the
 * master's and from every other clone's, and stays the same on re-apply.
 */
export function instanceId(machineId: string | undefined, machineName: string): string {
  const seed = machineId !== undefined ? `machine-id:${machineId}` : `name:${machineName}`;
  return `iid-ghostprep-${createHash('sha256').update(`ghostprep-nocloud:${seed}`).digest('hex').slice(0, 20)}`;
}

/** YAML double-quoted scalar (JSON strings are valid YAML). */
const q = (s: string): string => JSON.stringify(s);

/**
 * `cloudInit: nocloud`: a NoCloud seed per clone, so cloud-init runs on the
 * clone's first boot as a new instance with the clone's own identity:
 * meta-data (instance-id, local-hostname), user-data (#cloud-config) and,
 * when the profile has a network, network-config (version 2, from the same
 * model the network operation renders). The master's instance state goes so
 * nothing of the master's instance is reused; NoCloud is put first in the
 * datasource list.
 */
export const cloudInitSeedOperation: Operation = {
  name: 'cloud-init-seed',
  kind: 'customize',
  description: 'with cloudInit: nocloud, write a per-clone NoCloud seed (meta-data, user-data, network-config) and drop the master\'s instance state',
  defaultEnabled: true,
  order: 75,
  guests: ['linux'],
  async plan({ guest, machine, profile, identity, renderOnly }) {
    if (profile.cloudInit !== 'nocloud') return [];
    if (!renderOnly && !(await exists(guest, '/etc/cloud/cloud.cfg'))) {
      throw new GuestError('cloudInit: nocloud, but cloud-init is not installed in the guest (no /etc/cloud/cloud.cfg); install it in the master or drop cloudInit');
    }
    const pending = identity.pending ? { pending: true, reason: 'instance-id from the machine-id generated at apply' } : {};
    const iid = instanceId(identity.machineId, machine.prepared.name);
    const changes: Array<ReturnType<typeof write> | ReturnType<typeof del>> = [
      write('cloud-init-seed', `${SEED_DIR}/meta-data`, `${HEADER}\ninstance-id: ${q(iid)}\nlocal-hostname: ${q(machine.hostname)}\n`, 0o644, pending),
      write('cloud-init-seed', `${SEED_DIR}/user-data`, '#cloud-config\n{}\n', 0o644),
      write('cloud-init-seed', NOCLOUD_CFG, `${HEADER}\n# the clone's identity comes from its NoCloud seed (${SEED_DIR})\ndatasource_list: [NoCloud, None]\n`, 0o644),
    ];
    if (profile.network) {
      changes.push(write('cloud-init-seed', `${SEED_DIR}/network-config`, `${HEADER}\n${netplanBody(networkV2(interpret(profile.network)))}`, 0o644));
    } else if (await exists(guest, `${SEED_DIR}/network-config`)) {
      changes.push(del('cloud-init-seed', `${SEED_DIR}/network-config`, 'the master\'s seed network-config; the profile has no network'));
    }
    for (const [p, recursive] of [['/var/lib/cloud/instance', false], ['/var/lib/cloud/instances', true]] as const) {
      if (await guest.lstat(p)) changes.push(del('cloud-init-seed', p, 'cloud-init instance state of the master: the clone runs as a new instance', recursive));
    }
    return changes;
  },
};
