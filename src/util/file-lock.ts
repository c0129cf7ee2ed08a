/**
 * A lock file beside a file that several ghostprep processes may rewrite at
 * once (the image library's catalog, a known_hosts file shared by the shards of
 * a deploy): created with O_EXCL and holding the holder's pid; a lock whose
 * process is gone is taken over. The file itself is still replaced atomically
 * (temp + rename); the lock keeps two read-modify-write cycles from losing one
 * another's update.
 */
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { GhostprepError } from './errors.js';
import { processAlive } from './process.js';

/** Run `fn` holding `lock`; waits up to `timeoutMs` for another holder. `what` names the locked thing in the error. */
export async function withFileLock<T>(lock: string, what: string, fn: () => Promise<T> | T, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const fd = openSync(lock, 'wx', 0o644);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      let holder = 0;
      try { holder = Number(readFileSync(lock, 'utf8').trim()); } catch { continue; /* released meanwhile */ }
      if (holder && !processAlive(holder)) { try { unlinkSync(lock); } catch { /* raced */ } continue; }
      if (Date.now() > deadline) throw new GhostprepError(`${what} is locked by process ${holder || '?'} (${lock})`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  try {
    return await fn();
  } finally {
    try { unlinkSync(lock); } catch { /* gone */ }
  }
}
