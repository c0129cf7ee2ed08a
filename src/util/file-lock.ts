/**
 * A lock file beside a file that several ghostprep processes may rewrite at
 * once (the image library's catalog, a known_hosts file shared by the shards of
 * a deploy): created with O_EXCL and holding the holder's pid and host; a lock
 * whose process is gone from this host is taken over, one held on another host
 * (a shared filesystem) is waited for. The file itself is still replaced atomically
 * (temp + rename); the lock keeps two read-modify-write cycles from losing one
 * another's update.
 */
import { createHash } from 'node:crypto';
import { accessSync, closeSync, constants as fsConstants, openSync, readFileSync, realpathSync, statSync, unlinkSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { GhostprepError } from './errors.js';
import { describeLockOwner, lockHolderGone, lockOwnerLine, parseLockOwner, type LockOwner } from './process.js';

/**
 * A lock file that names no holder is being written (its creator has not put
 * its pid in yet) while it is younger than this; older, it is left by a run
 * killed in that instant, and taken over.
 */
const UNNAMED_LOCK_GRACE_MS = 5_000;

/**
 * One attempt at `lock`: undefined when it is now ours, else its live holder, or
 * null when the file names none yet (its holder is between creating and writing
 * it). A lock whose holder is gone from this host, or that has named no holder
 * for UNNAMED_LOCK_GRACE_MS, is removed and tried again. Shared by withFileLock,
 * which waits, and lockOrRefuse, which refuses.
 */
export function tryLock(lock: string, mode = 0o644): LockOwner | null | undefined {
  for (;;) {
    try {
      const fd = openSync(lock, 'wx', mode);
      writeSync(fd, lockOwnerLine());
      closeSync(fd);
      return undefined;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      let text: string;
      try { text = readFileSync(lock, 'utf8'); } catch { continue; /* released meanwhile */ }
      const holder = parseLockOwner(text);
      if (!holder && !unnamedTooLong(lock)) return null;
      if (holder && !lockHolderGone(holder)) return holder;
      try { unlinkSync(lock); } catch { /* raced */ }
    }
  }
}

function unnamedTooLong(lock: string): boolean {
  try { return Date.now() - statSync(lock).mtimeMs > UNNAMED_LOCK_GRACE_MS; } catch { return true; /* gone: try again */ }
}

/** Run `fn` holding `lock`; waits up to `timeoutMs` for another holder. `what` names the locked thing in the error. */
export async function withFileLock<T>(lock: string, what: string, fn: () => Promise<T> | T, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (let holder = tryLock(lock); holder !== undefined; holder = tryLock(lock)) {
    if (Date.now() > deadline) throw new GhostprepError(`${what} is locked by ${describeLockOwner(holder ?? undefined)} (${lock}${holder && !holder.here ? '; remove it if that run is over' : ''})`);
    await new Promise((r) => setTimeout(r, 50));
  }
  try {
    return await fn();
  } finally {
    try { unlinkSync(lock); } catch { /* gone */ }
  }
}

/**
 * Where the lock of a target lives. Beside it, in its parent directory, as
 * `.NAME.ghostprep-lock`: every run that writes the target meets it there,
 * whatever --state it uses, and on a filesystem shared by several hosts (the
 * shards of a Slurm array writing clones to NFS) every host does. A block
 * device's parent is /dev (devtmpfs: not ours to litter, and not shared), and
 * a parent where no file can be created (read-only, or not ours) holds no
 * lock: both lock in this host's lock directory (/run/lock, or the temp dir
 * without one) under a name made from the target's real path, which meets
 * the runs of this host only.
 */
export function targetLockFiles(kind: 'rootfs' | 'image' | 'device', target: string): { beside?: string; hostLocal: string } {
  let real = path.resolve(target);
  try { real = realpathSync(real); } catch { /* not there yet: its own path */ }
  const hostDir = isWritableDir('/run/lock') ? '/run/lock' : os.tmpdir();
  const tag = createHash('sha256').update(real).digest('hex').slice(0, 16);
  const hostLocal = path.join(hostDir, `ghostprep-target-${path.basename(real).replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 40)}-${tag}.lock`);
  return kind === 'device' || real === path.dirname(real) ? { hostLocal } : { beside: path.join(path.dirname(real), `.${path.basename(real)}.ghostprep-lock`), hostLocal };
}

function isWritableDir(dir: string): boolean {
  try { accessSync(dir, fsConstants.W_OK); return true; } catch { return false; }
}

/** Errors of creating a file in a directory that takes none: the host's lock directory instead. */
const NO_LOCK_HERE = new Set(['EROFS', 'EACCES', 'EPERM']);

/**
 * Take the lock of a target written by apply, deploy or seal, or refuse: two
 * runs writing one guest at once (two --state dirs, two users' runs, a seal and
 * an apply) would interleave their writes; the per-machine lock in the state
 * dir only meets runs that share that state dir. Returns the release.
 */
export function lockTarget(kind: 'rootfs' | 'image' | 'device', target: string): () => void {
  const { beside, hostLocal } = targetLockFiles(kind, target);
  if (beside) {
    try {
      return lockOrRefuse(beside, `target ${target}`);
    } catch (err) {
      if (!NO_LOCK_HERE.has((err as NodeJS.ErrnoException).code ?? '')) throw err;
    }
  }
  return lockOrRefuse(hostLocal, `target ${target}`);
}

/**
 * Take `file` (0600) or refuse: the locks of one machine (state dir) and of one
 * target, which a second run must not wait for. A lock whose holder is gone
 * from this host, or that named no holder for seconds, is taken over (tryLock);
 * so is one of this very process. A lock being written right now (no holder
 * named yet) and one held on another host are not. Returns the release.
 */
export function lockOrRefuse(file: string, what: string): () => void {
  for (let attempt = 0; attempt < 2; attempt++) {
    const owner = tryLock(file, 0o600);
    if (owner === undefined) return () => { try { unlinkSync(file); } catch { /* already gone */ } };
    const mine = owner?.here === true && owner.pid === process.pid;
    if (!mine) throw new GhostprepError(`${what} is being changed by another ghostprep run (${describeLockOwner(owner ?? undefined)}, lock ${file}${owner && !owner.here ? '; remove it if that run is over' : ''})`);
    try { unlinkSync(file); } catch { /* gone */ }
  }
  throw new GhostprepError(`cannot lock ${what} (${file})`);
}
