/**
 * The master's network files that would fight the new ones on a clone:
 * bound to the master's MAC (which the clone does not have, or worse, which
 * the profile gives to another card), or configuring the same interface.
 * Each renderer record holds the rules for its own format (`stale`): whole
 * files are deleted; files that also hold unrelated configuration (netplan
 * YAML, ENI) are rewritten without the conflicting definitions. The rules
 * here belong to no format: udev's persistent names, files an earlier
 * ghostprep run wrote that the current configuration no longer produces (so
 * switching renderer or dropping an interface converges), and cloud-init.
 */
import type { GuestReader } from '../core/backend.js';
import type { FileChange } from '../core/file-change.js';
import type { NetworkModel } from '../core/network.js';
import { HEADER, UDEV_DIR } from './renderers/common.js';
import { claimsOf, del, isOurs, listFiles, write } from './renderers/guest.js';
import { type Claims } from '../core/network.js';
import { RENDERERS } from './renderers/index.js';

export const PERSISTENT_NET = `${UDEV_DIR}/70-persistent-net.rules`;
export const CLOUD_CFG = '/etc/cloud/cloud.cfg';
export const CLOUD_GUARD = '/etc/cloud/cloud.cfg.d/99-ghostprep-network.cfg';

async function staleUdev(reader: GuestReader): Promise<FileChange[]> {
  if (!(await reader.lstat(PERSISTENT_NET))) return [];
  return [del(PERSISTENT_NET, 'udev persistent-net rules bind interface names to the master\'s MAC addresses')];
}

const hasGhostprepName = (name: string): boolean => name.includes('ghostprep');

/** Files an earlier ghostprep run wrote, in any renderer's directories or udev's, that the current configuration does not produce. */
async function leftovers(reader: GuestReader, c: Claims): Promise<FileChange[]> {
  const places = [...RENDERERS.all().flatMap((r) => r.dirs.map((dir) => ({ dir, ownNames: r.ownNames ?? hasGhostprepName }))), { dir: UDEV_DIR, ownNames: hasGhostprepName }];
  const out: FileChange[] = [];
  for (const { dir, ownNames } of places) {
    for (const f of await listFiles(reader, dir, ownNames)) {
      if (!c.ours.has(f.path) && isOurs(f.text)) out.push(del(f.path, 'written by an earlier ghostprep run; the current network configuration no longer produces it'));
    }
  }
  return out;
}

/** cloud-init re-renders the network on a clone's first boot (new instance): tell it not to. */
async function cloudInitGuard(reader: GuestReader): Promise<FileChange[]> {
  if (!(await reader.lstat(CLOUD_CFG))) return [];
  const text = `# ${HEADER}\n# ghostprep configures the network offline; keep cloud-init from replacing it on first boot.\nnetwork: {config: disabled}\n`;
  return [write(CLOUD_GUARD, text, 0o644, 'cloud-init is installed and would regenerate the network configuration on the clone\'s first boot')];
}

/**
 * Every change needed so the master's configuration does not fight ours,
 * whichever renderer was chosen: every record's stale rules run. Sorted by
 * path; when two rules name one path, a format's own rule wins over the
 * leftover rule (its reason is the more specific).
 */
export async function findStale(reader: GuestReader, model: NetworkModel, ours: Iterable<string>, machineId?: string): Promise<FileChange[]> {
  const c = claimsOf(model, ours, machineId);
  const groups = await Promise.all([...RENDERERS.all().map((r) => r.stale(reader, c)), staleUdev(reader), leftovers(reader, c), cloudInitGuard(reader)]);
  const byPath = new Map<string, FileChange>();
  for (const change of groups.flat()) if (!byPath.has(change.path)) byPath.set(change.path, change);
  return [...byPath.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}
