/**
 * A lock file beside a file that several ghostprep processes may rewrite at
 * once (the image library's catalog, a known_hosts file shared by the shards of
 * a deploy): created with O_EXCL and holding the holder's pid and host; a lock
 * whose process is gone from this host is taken over, one held on another host
 * (a shared filesystem) is waited for. The file itself is still replaced atomically
 * (temp + rename); the lock keeps two read-modify-write cycles from losing one
 * another's update.
 */
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { GhostprepError } from './errors.js';
import { describeLockOwner, lockHolderGone, lockOwnerLine, parseLockOwner, type LockOwner } from './process.js';

/**
 * One attempt at `lock`: undefined when it is now ours, else its live holder, or
 * null when the file names none (its holder is between creating and writing it,
 * or it is garbage). A lock whose holder is gone from this host is removed and
 * tried again. Shared by withFileLock, which waits, and the per-machine lock of
 * the state dir, which refuses.
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
      if (!holder) return null;
      if (!lockHolderGone(holder)) return holder;
      try { unlinkSync(lock); } catch { /* raced */ }
    }
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
