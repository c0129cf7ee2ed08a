/**
 * seal --check (and capture, by default): does a master still carry identity
 * that every clone would inherit? Each finding names the item, the file, and
 * the seal operation that removes it, or null when no seal operation does
 * (then the reason says what to do).
 *
 * The seal operations are planned read-only, as `seal --dry-run` does: what
 * they would delete or rewrite on the master is identity still there. What
 * they would only add (a first-boot unit, a wants link) is not. Identities
 * no operation removes (NetworkManager connection UUIDs of connections that
 * are kept, the instance-id of a NoCloud seed) come from audit's file reader.
 */
import type { GuestReader, TargetSpec } from '../core/backend.js';
import { errorMessage } from '../util/errors.js';
import { visitTargets, type VisitOptions } from './open.js';
import { readHostSideGuest } from './host-read.js';
import { readFileIdentities } from '../audit/guest-files.js';
import { parseMachineId } from '../identity/machine-id.js';
import { operations, type SealOperation } from '../operations/index.js';
import { detectWindows, NOT_GENERALIZED_RISK } from '../windows/detect.js';
import { planSeal } from './seal.js';

export interface SealFinding {
  /** What identifies the master ("machine-id", "SSH host key", "DHCP lease or DUID"…). */
  readonly item: string;
  readonly path: string;
  /** The seal operation that removes it; null when none does. */
  readonly operation: string | null;
  readonly reason: string;
}

/** Seal operations whose removals are identity a clone would inherit (the others clean, they do not de-identify). */
export const IDENTITY_OPERATIONS: Readonly<Record<string, string>> = {
  'machine-id': 'machine-id',
  'dbus-machine-id': 'D-Bus machine id',
  'ssh-host-keys': 'SSH host key',
  dhcp: 'DHCP lease or DUID',
  'network-manager': 'NetworkManager state',
  'cloud-init': 'cloud-init instance state',
  'iscsi-initiator': 'iSCSI initiator name',
  'random-seed': 'random seed',
  'credential-secret': 'systemd credential secret',
  'udev-persistent-net': 'persistent network rule',
  'lvm-devices': 'LVM devices file',
};

/** Every identity seal operation, enabled by default or not: the check asks what is there, not what seal would do by default. */
function identityOperations(): SealOperation[] {
  return operations.list('seal').filter((o) => o.name in IDENTITY_OPERATIONS);
}

export async function checkSeal(guest: GuestReader): Promise<SealFinding[]> {
  const windows = await detectWindows(guest);
  if (windows) {
    return windows.generalized ? [] : [{ item: 'Windows image state', path: `image state ${windows.imageState ?? 'unknown'}`, operation: null, reason: NOT_GENERALIZED_RISK }];
  }
  const findings: SealFinding[] = [];
  for (const c of await planSeal(guest, identityOperations())) {
    if (!c.before || (c.action !== 'modify' && c.action !== 'delete')) continue;
    findings.push({ item: IDENTITY_OPERATIONS[c.change.source] ?? c.change.source, path: c.change.path, operation: c.change.source, reason: c.change.reason ?? 'identifies the master' });
  }
  const removed = new Set(findings.map((f) => f.path));
  const mid = await guest.readFile('/etc/machine-id', { maxBytes: 4096 }).catch(() => null);
  const files = await readFileIdentities(guest, parseMachineId(mid?.toString('utf8') ?? null) ?? null);
  for (const c of files.nmConnections) {
    if (removed.has(c.path)) continue;
    findings.push({ item: 'NetworkManager connection UUID', path: c.path, operation: null, reason: `kept by seal: every clone would share connection ${c.uuid}; remove the file or let apply render the network` });
  }
  for (const c of files.cloudInitInstanceIds) {
    if (removed.has(c.path) || c.path.startsWith('/var/lib/cloud/data/')) continue;
    findings.push({ item: 'cloud-init instance-id', path: c.path, operation: null, reason: `the NoCloud seed gives every clone instance-id ${c.id}: give each clone its own seed (a profile file) or remove it` });
  }
  return findings;
}

export interface SealCheckResult { target: string; findings: SealFinding[]; error: string | null }

/**
 * checkSeal on each target, opened read-only: an image host-side (an ext Linux root or a
 * Windows system volume, host-read.ts; unless `hostRead` is false) when it opens exactly
 * that way, else in an appliance.
 */
export async function checkSealTargets(targets: readonly TargetSpec[], visit: VisitOptions & { hostRead?: boolean } = {}): Promise<SealCheckResult[]> {
  const results: SealCheckResult[] = [];
  const rest: TargetSpec[] = [];
  for (const t of targets) {
    const host = visit.hostRead === false ? undefined : await readHostSideGuest(t, checkSeal, { windows: true });
    if (host) results.push({ target: t.path, findings: host.value, error: null });
    else rest.push(t);
  }
  await visitTargets(rest, visit, async (t, guest) => {
    const target = t.kind === 'rootfs' ? `rootfs:${t.path}` : t.path;
    if (guest instanceof Error) { results.push({ target, findings: [], error: guest.message }); return; }
    try { results.push({ target, findings: await checkSeal(guest), error: null }); } catch (err) { results.push({ target, findings: [], error: errorMessage(err) }); }
  });
  return results.sort((a, b) => a.target.localeCompare(b.target));
}
