/**
 * Identity per machine: machine-id and SSH host keys, from the state dir when
 * it has them, else generated (or derived). `plan` resolves read-only: it
 * generates nothing and marks what apply would generate as pending.
 */
import path from 'node:path';
import type { RenderedMachine } from '../core/machine.js';
import type { ResolvedIdentity } from '../core/operation.js';
import { originOf } from '../profile/profile-merge.js';
import { GhostprepError } from '../util/errors.js';
import { HostFileError, readHostText } from '../util/host-file.js';
import { deriveMachineId, generateMachineId, parseMachineId } from './machine-id.js';
import { hostKeysFor } from './ssh-keys.js';
import { type HostKeyPair } from '../core/operation.js';
import type { StateDir } from './state.js';

/** A site secret is a short string: a larger file is not one (and is not read whole). */
const SITE_SECRET_MAX_BYTES = 64 * 1024;

/**
 * The site secret, or why site.secretFile gives none (a FIFO, a device, a
 * directory, a file over the cap, a missing or unreadable file). The reason
 * names the file, never its contents.
 */
export function readSiteSecret(r: RenderedMachine): { secret?: Buffer; problem?: string } {
  const file = r.profile.site?.secretFile;
  if (file) {
    const origin = originOf(r.prepared.traced.origins, '/site/secretFile');
    try {
      const secret = readHostText(path.resolve(path.dirname(origin?.source.file ?? '.'), file), { maxBytes: SITE_SECRET_MAX_BYTES, what: 'site secret file' }).trim();
      return secret ? { secret: Buffer.from(secret) } : { problem: `site.secretFile "${file}" is empty` };
    } catch (err) {
      if (err instanceof HostFileError) return { problem: `site.secretFile "${file}": ${err.reason}` };
      throw err;
    }
  }
  const env = process.env.GHOSTPREP_SITE_SECRET;
  return env ? { secret: Buffer.from(env) } : {};
}

/** The site secret for `machineId: derive`: site.secretFile (relative to its profile) or $GHOSTPREP_SITE_SECRET. */
export function siteSecret(r: RenderedMachine): Buffer | undefined {
  return readSiteSecret(r).secret;
}

export interface ResolveOptions {
  readonly state: StateDir;
  /** plan: never write the state dir, never run ssh-keygen. */
  readonly readOnly: boolean;
}

export async function resolveIdentity(r: RenderedMachine, opts: ResolveOptions): Promise<ResolvedIdentity> {
  const name = r.prepared.name;
  const mode = r.profile.machineId ?? 'generate';
  // a machine the state dir has never seen (a plan before the first apply): nothing to read
  let seen: boolean | undefined;
  const known = (): boolean => (seen ??= opts.readOnly ? opts.state.listed(name) : opts.state.has(name));
  let machineId: string | undefined;
  let pending = false;
  if (mode === 'keep') {
    machineId = undefined;
  } else if (mode === 'derive') {
    const { secret, problem } = readSiteSecret(r);
    if (!secret) throw new GhostprepError(`machine ${name}: machineId: derive needs a site secret (site.secretFile or $GHOSTPREP_SITE_SECRET)${problem ? `: ${problem}` : ''}`);
    machineId = deriveMachineId(secret, name);
  } else {
    machineId = known() ? parseMachineId(opts.state.read(name, 'machine-id')?.toString('utf8')) : undefined;
    if (!machineId) {
      machineId = generateMachineId();
      if (opts.readOnly) pending = true;
    }
  }
  if (machineId && !opts.readOnly) opts.state.write(name, 'machine-id', machineId + '\n', 0o600);
  const types = r.profile.ssh?.hostKeys ?? [];
  let hostKeys: HostKeyPair[] = [];
  if (opts.readOnly) {
    hostKeys = types.length && known() ? readStoredKeys(opts.state, name, types) : [];
  } else if (types.length) {
    hostKeys = await hostKeysFor(opts.state, name, types, `root@${r.fqdn}`);
  }
  const stateSecret = (file: string, make: () => string): { value: string; pending: boolean } => {
    const kept = (opts.readOnly ? known() : true) ? opts.state.read(name, file)?.toString('utf8') : undefined;
    if (kept) return { value: kept, pending: false };
    const value = make();
    if (opts.readOnly) return { value, pending: true };
    opts.state.write(name, file, value, 0o600);
    return { value, pending: false };
  };
  return { machineId, pending, hostKeys, stateSecret };
}

function readStoredKeys(state: StateDir, name: string, types: readonly string[]): HostKeyPair[] {
  const out: HostKeyPair[] = [];
  for (const type of types) {
    const priv = state.read(name, `ssh/ssh_host_${type}_key`);
    const pub = state.read(name, `ssh/ssh_host_${type}_key.pub`);
    if (priv && pub) out.push({ type: type as HostKeyPair['type'], privateKey: priv, publicKey: pub.toString('utf8').trim() });
  }
  return out;
}
