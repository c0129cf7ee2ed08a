/**
 * Temporary directories of a test process, removed when it exits (the
 * clones, trees and logs of a full run come to gigabytes): each tempDir()
 * of the helpers registers its directory here. GHOSTPREP_KEEP_TEMP=1 keeps
 * them for a look after a failure.
 */
import { rmSync } from 'node:fs';

const made = new Set<string>();
let hooked = false;

/** Remove `dir` when this process exits; returns it. */
export function removedAtExit(dir: string): string {
  made.add(dir);
  if (!hooked) {
    hooked = true;
    process.once('exit', () => {
      if (process.env.GHOSTPREP_KEEP_TEMP) return;
      for (const d of made) {
        try { rmSync(d, { recursive: true, force: true }); } catch { /* a file still held: the OS's tmp cleaning takes it */ }
      }
    });
  }
  return dir;
}
