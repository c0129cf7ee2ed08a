/**
 * A lock file beside a file that several ghostprep processes may rewrite at
 * once (the image library's catalog, a known_hosts file shared by the shards of
 * a deploy): created with O_EXCL and holding the holder's pid and host; a lock
 * whose process is gone from this host is taken over, one held on another host
 * (a shared filesystem) is waited for. The file itself is still replaced atomically
 * (temp + rename); the lock keeps two read-modify-write cycles from losing one
 * another's update.
 */
import { createHash, randomBytes } from 'node:crypto';
import { accessSync, closeSync, constants as fsConstants, fstatSync, openSync, readFileSync, realpathSync, renameSync, unlinkSync, writeSync } from 'node:fs';
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
 * for UNNAMED_LOCK_GRACE_MS, is taken over (takeOver: exactly one of the runs
 * that find it so gets it). Shared by withFileLock, which waits, and
 * lockOrRefuse, which refuses.
 */
export function tryLock(lock: string, mode = 0o644): LockOwner | null | undefined {
  for (;;) {
    if (createNamed(lock, mode)) return undefined;
    let seen: SeenLock | undefined;
    try { seen = readLock(lock); } catch (err) {
      // another user's lock (0600): held by someone this run cannot see, and not ours to take over
      if (['EACCES', 'EPERM'].includes((err as NodeJS.ErrnoException).code ?? '')) return null;
      throw err;
    }
    if (!seen) continue; // released meanwhile
    const holder = parseLockOwner(seen.text);
    if (!holder && !unnamedTooLong(seen)) return null;
    if (holder && !lockHolderGone(holder)) return holder;
    const outcome = takeOver(lock, seen, mode);
    if (outcome === 'ours') return undefined;
    if (outcome !== 'changed') return outcome; // another run is taking it over: that run holds it
  }
}

/** Create `file` (O_EXCL) holding our owner line; false when it exists. */
function createNamed(file: string, mode: number): boolean {
  let fd: number;
  try { fd = openSync(file, 'wx', mode); } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
  try { writeSync(fd, lockOwnerLine()); } finally { closeSync(fd); }
  return true;
}

/** What a lock file held when read: its text, and which file it was (inode, mtime) to tell it from a newer one. */
export interface SeenLock { readonly text: string; readonly ino: number; readonly mtimeMs: number }

export function readLock(file: string): SeenLock | undefined {
  let fd: number;
  try { fd = openSync(file, 'r'); } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const st = fstatSync(fd);
    return { text: readFileSync(fd, 'utf8'), ino: st.ino, mtimeMs: st.mtimeMs };
  } finally { closeSync(fd); }
}

const sameLock = (a: SeenLock | undefined, b: SeenLock): boolean => a !== undefined && a.ino === b.ino && a.mtimeMs === b.mtimeMs && a.text === b.text;

function unnamedTooLong(seen: { mtimeMs: number }): boolean {
  return Date.now() - seen.mtimeMs > UNNAMED_LOCK_GRACE_MS;
}

/**
 * Take over the abandoned lock `seen`, atomically: several runs may find the
 * same dead holder at once, and deleting the file by path would let a slow one
 * delete the lock a fast one had just taken.
 *
 * The runs first compete for a claim on that very file: `LOCK.takeover-INODE-N`,
 * created with O_EXCL and naming its creator. A claim whose creator is alive
 * (or is being written) means another run is taking the lock over: it holds
 * it, and is returned. A claim whose creator died (between claiming and
 * replacing) is passed over by claiming N+1, again with O_EXCL. The one run
 * holding the claim then checks that the lock is still the file it judged
 * abandoned (same inode, mtime and text; 'changed' otherwise, and the caller
 * reads it again) and renames a fresh lock file naming itself over it. The
 * claims go once the lock is replaced: a run that claims afterwards finds a
 * different lock and reads it again.
 */
export function takeOver(lock: string, seen: SeenLock, mode: number): 'ours' | 'changed' | LockOwner | null {
  const claims: string[] = [];
  try {
    for (let n = 0; ; n++) {
      const claim = `${lock}.takeover-${seen.ino}-${n}`;
      claims.push(claim);
      if (createNamed(claim, 0o600)) break;
      const other = readLock(claim);
      if (!other) { n--; claims.pop(); continue; } // released meanwhile: try the same one again
      const taker = parseLockOwner(other.text);
      if (taker ? !lockHolderGone(taker) : !unnamedTooLong(other)) {
        claims.length = 0;
        // A run that read the dead lock late may claim after the winner's claims went; it
        // then finds the lock changed and loses. The lock's own holder is the one to name.
        if (!sameLock(readLock(lock), seen)) return 'changed';
        return taker ?? null;
      }
    }
    if (!sameLock(readLock(lock), seen)) return 'changed';
    const fresh = `${lock}.${process.pid}-${randomBytes(6).toString('hex')}.tmp`;
    try {
      if (!createNamed(fresh, mode)) return 'changed';
      renameSync(fresh, lock);
    } catch (err) {
      try { unlinkSync(fresh); } catch { /* not made */ }
      throw err;
    }
    return 'ours';
  } finally {
    for (const claim of claims) try { unlinkSync(claim); } catch { /* gone */ }
  }
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
