/**
 * From a machine's rendered `storage` profile section to the device identity
 * the backend makes (DeviceIdentitySpec), with the clone's LUKS passphrase:
 * read from the machine's key file (`key: {file: PATTERN}`, first line, as
 * --luks-key-file reads one) or generated once and kept in the state dir
 * (`key: {generate: true}`: MACHINE/luks.key, mode 0600). The passphrase is
 * never printed, logged or put in an error.
 */
import { randomBytes } from 'node:crypto';
import { GhostprepError } from '../util/errors.js';
import { readHostText } from '../util/host-file.js';
import type { DeviceIdentitySpec, StorageProfile } from '../core/device-identity.js';

/** The part of the state dir (identity/state.ts StateDir) a generated key needs. */
export interface KeyState {
  read(machine: string, file: string): Buffer | undefined;
  write(machine: string, file: string, content: string, mode: number): void;
}

/** State dir file of a generated passphrase. */
export const LUKS_KEY_STATE_FILE = 'luks.key';
const KEY_MAX_BYTES = 64 * 1024;

/** A random passphrase: 32 bytes as 43 base64url characters (no newline, no NUL). */
export function generateLuksKey(): string {
  return randomBytes(32).toString('base64url');
}

/**
 * The device identity of one machine; undefined when its profile asks for
 * none. `write` false (plan): a generated key not yet in the state dir is not
 * created (a plan never writes), and the clone's own key is left out.
 */
export function deviceIdentityOf(storage: StorageProfile | undefined, machine: string, state: KeyState, write: boolean): DeviceIdentitySpec | undefined {
  if (!storage || (!storage.lvm && !storage.luks)) return undefined;
  const out: { lvm?: DeviceIdentitySpec['lvm']; luks?: DeviceIdentitySpec['luks'] } = {};
  if (storage.lvm) out.lvm = { newUuids: storage.lvm.newUuids ?? true, ...(storage.lvm.vgName !== undefined && { vgName: storage.lvm.vgName }) };
  const l = storage.luks;
  if (l) {
    let newKey: string | undefined;
    if (l.key && 'file' in l.key) newKey = keyFromFile(l.key.file);
    else if (l.key && 'generate' in l.key) newKey = generatedKey(machine, state, write);
    if (l.removeMasterKeys && !l.key) throw new GhostprepError(`${machine}: storage.luks.removeMasterKeys needs storage.luks.key: without a passphrase of its own the clone could not be opened at all`);
    if (l.reencrypt && !l.key) throw new GhostprepError(`${machine}: storage.luks.reencrypt needs storage.luks.key: the re-encrypted volume opens with the clone's own passphrase only`);
    out.luks = { newUuid: l.newUuid ?? true, removeMasterKeys: !!l.removeMasterKeys && newKey !== undefined, ...(newKey !== undefined && { newKey }), ...(l.reencrypt && { reencrypt: true }) };
  }
  return out;
}

function keyFromFile(file: string): string {
  let text: string;
  try {
    text = readHostText(file, { maxBytes: KEY_MAX_BYTES });
  } catch (err) {
    throw new GhostprepError(`storage.luks.key.file ${file}: ${(err as Error).message}`, { cause: err });
  }
  const first = text.split('\n')[0]!.replace(/\r$/, '');
  if (!first) throw new GhostprepError(`storage.luks.key.file ${file}: the first line (the passphrase) is empty`);
  if (first.includes('\0')) throw new GhostprepError(`storage.luks.key.file ${file}: the passphrase contains a NUL byte`);
  return first;
}

function generatedKey(machine: string, state: KeyState, write: boolean): string | undefined {
  const kept = state.read(machine, LUKS_KEY_STATE_FILE)?.toString('utf8').split('\n')[0];
  if (kept) return kept;
  if (!write) return undefined;
  const key = generateLuksKey();
  state.write(machine, LUKS_KEY_STATE_FILE, `${key}\n`, 0o600);
  return key;
}
