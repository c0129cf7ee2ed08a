/**
 * Apply: the only place that writes. Each change goes through the guest's
 * write primitives (atomic per file); then every change is verified by
 * reading it back.
 */
import type { Guest, GuestReader } from '../core/backend.js';
import { sha256 } from '../identity/state.js';
import { GuestError } from '../util/errors.js';
import type { EffectiveChange } from './diff.js';
import { describeMode, type FileChange } from '../core/file-change.js';
import { Transaction } from './transaction.js';
import { applyRegistryChange, verifyRegistryChange } from '../windows/hive.js';

/**
 * Commit one machine's changes as a transaction: on a failure part-way what
 * was written is restored and a RolledBackError thrown. The caller verifies,
 * then calls finish() (or failWith() to roll back after all).
 */
export async function commitChanges(guest: Guest, changes: readonly EffectiveChange[]): Promise<Transaction> {
  const tx = new Transaction(guest, applyOne);
  await tx.commit(changes);
  return tx;
}

export async function applyChanges(guest: Guest, changes: readonly EffectiveChange[]): Promise<void> {
  for (const { change: c } of changes) {
    try {
      await applyOne(guest, c);
    } catch (err) {
      throw new GuestError(`cannot ${c.op} ${c.path}: ${(err as Error).message}`, c.path, { cause: err });
    }
  }
}

export async function applyOne(guest: Guest, c: FileChange): Promise<void> {
  switch (c.op) {
    case 'write':
      if (c.pending) throw new Error('internal: pending content reached apply');
      return guest.writeFile(c.path, c.content, { mode: c.mode, uid: c.uid, gid: c.gid });
    case 'mkdir':
      await guest.mkdir(c.path, { mode: c.mode, uid: c.uid, gid: c.gid });
      await guest.chmod(c.path, c.mode);
      return guest.chown(c.path, c.uid, c.gid);
    case 'delete':
      return guest.remove(c.path, { recursive: c.recursive });
    case 'symlink':
      return guest.symlink(c.target, c.path);
    case 'registry':
      return applyRegistryChange(guest, c);
  }
}

/** Read every change back; returns one message per mismatch (empty: verified). */
export async function verifyChanges(guest: GuestReader, changes: readonly FileChange[], options: { checkOwner: boolean }): Promise<string[]> {
  const problems: string[] = [];
  for (const c of changes) {
    const st = await guest.lstat(c.path);
    switch (c.op) {
      case 'registry':
        problems.push(...(await verifyRegistryChange(guest, c)));
        break;
      case 'delete':
        if (st) problems.push(`${c.path} still exists`);
        break;
      case 'symlink':
        if (st?.type !== 'symlink' || (await guest.readlink(c.path)) !== c.target) problems.push(`${c.path} is not a symlink to ${c.target}`);
        break;
      case 'mkdir': {
        const d = await guest.stat(c.path);
        if (d?.type !== 'dir') problems.push(`${c.path} is not a directory`);
        break;
      }
      case 'write': {
        if (st?.type !== 'file') { problems.push(`${c.path} is not a regular file after writing`); break; }
        const back = await guest.readFile(c.path);
        if (!back || sha256(back) !== sha256(c.content)) problems.push(`${c.path} reads back different content`);
        if ((st.mode & 0o7777) !== (c.mode & 0o7777)) problems.push(`${c.path} has mode ${describeMode(st.mode)}, wanted ${describeMode(c.mode)}`);
        if (options.checkOwner && (st.uid !== c.uid || st.gid !== c.gid)) problems.push(`${c.path} is owned by ${st.uid}:${st.gid}, wanted ${c.uid}:${c.gid}`);
      }
    }
  }
  return problems;
}
