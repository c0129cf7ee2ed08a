/**
 * SSH host keys: generated on the host with the real ssh-keygen into the
 * state dir (once per machine and type), then copied into the guest.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { HostKeyType } from '../core/profile.js';
import type { HostKeyPair } from '../core/operation.js';
import { MissingToolError } from '../util/errors.js';
import type { StateDir } from './state.js';

const BITS: Partial<Record<HostKeyType, string>> = { rsa: '3072', ecdsa: '256' };

export async function generateHostKey(type: HostKeyType, comment: string): Promise<HostKeyPair> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ghostprep-key-'));
  try {
    const file = path.join(dir, 'key');
    const args = ['-q', '-t', type, '-N', '', '-C', comment, '-f', file];
    if (BITS[type]) args.push('-b', BITS[type]!);
    try {
      // execa is loaded here, not at the top: validate and plan import this module but generate no key
      const { execa } = await import('execa');
      await execa('ssh-keygen', args, { stdin: 'ignore' });
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') throw new MissingToolError('ssh-keygen', 'install OpenSSH: apt-get install openssh-client (Debian/Ubuntu) or dnf install openssh');
      throw err;
    }
    return { type, privateKey: readFileSync(file), publicKey: readFileSync(file + '.pub', 'utf8').trim() };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Existing pairs from the state dir, generating missing types. */
export async function hostKeysFor(state: StateDir, machine: string, types: readonly HostKeyType[], comment: string, options: { readOnly?: boolean } = {}): Promise<HostKeyPair[]> {
  const out: HostKeyPair[] = [];
  for (const type of types) {
    const priv = state.read(machine, `ssh/ssh_host_${type}_key`);
    const pub = state.read(machine, `ssh/ssh_host_${type}_key.pub`);
    if (priv && pub) {
      out.push({ type, privateKey: priv, publicKey: pub.toString('utf8').trim() });
      continue;
    }
    const pair = await generateHostKey(type, comment);
    if (!options.readOnly) {
      state.write(machine, `ssh/ssh_host_${type}_key`, pair.privateKey, 0o600);
      state.write(machine, `ssh/ssh_host_${type}_key.pub`, pair.publicKey + '\n', 0o644);
    }
    out.push(pair);
  }
  return out;
}

/** OpenSSH's SHA256 fingerprint: base64 of sha256 of the key blob, no padding. */
export function fingerprint(publicKey: string): string {
  const blob = publicKey.trim().split(/\s+/)[1] ?? '';
  return 'SHA256:' + createHash('sha256').update(Buffer.from(blob, 'base64')).digest('base64').replace(/=+$/, '');
}

export function keyTypeOf(publicKey: string): string {
  const algo = publicKey.trim().split(/\s+/)[0] ?? '';
  if (algo === 'ssh-ed25519') return 'ed25519';
  if (algo === 'ssh-rsa') return 'rsa';
  if (algo.startsWith('ecdsa-')) return 'ecdsa';
  return algo;
}
