/**
 * The state dir keeps each machine's generated identity (machine-id, SSH
 * host key pairs) so that re-applying is idempotent and `plan` after `apply`
 * shows no changes. Private keys are 0600 in 0700 directories.
 */
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, renameSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { GhostprepError } from '../util/errors.js';
import { lockOrRefuse } from '../util/file-lock.js';

export const DEFAULT_STATE_DIR = '.ghostprep/state';

export class StateDir {
  constructor(readonly root: string) {}

  /**
   * Create the root 0700, or refuse one where others could plant or read keys:
   * a world-writable state dir, one owned by another user (root's is accepted:
   * a state dir root prepared for a service account), and one whose parent is
   * world-writable without the sticky bit (anyone could rename it away and put
   * their own in its place). /tmp-style parents (sticky) are fine for a dir of
   * ours. Checked before creating anything, so a refused --state leaves no
   * directory behind.
   */
  ensure(): void {
    const uid = process.getuid?.();
    let existing = path.resolve(this.root);
    while (!existsSync(existing) && path.dirname(existing) !== existing) existing = path.dirname(existing);
    // the directory whose entry would be replaced: the root's parent, or the existing ancestor the new chain hangs from
    const parent = existing === path.resolve(this.root) ? path.dirname(realpathSync(existing)) : realpathSync(existing);
    const ps = statSync(parent);
    if (ps.mode & 0o002 && !(ps.mode & 0o1000)) throw new GhostprepError(`state dir ${this.root}: its parent ${parent} is world-writable without the sticky bit, so anyone could replace the state dir; refusing to keep private keys there (use a directory of your own, or chmod +t ${parent})`);
    mkdirSync(this.root, { recursive: true, mode: 0o700 });
    const st = statSync(this.root);
    if (!st.isDirectory()) throw new GhostprepError(`state dir ${this.root} is not a directory`);
    if (st.mode & 0o002) throw new GhostprepError(`state dir ${this.root} is world-writable; refusing to keep private keys there (chmod 700 it)`);
    if (uid !== undefined && st.uid !== uid && st.uid !== 0) throw new GhostprepError(`state dir ${this.root} is owned by uid ${st.uid}, not by you (uid ${uid}) or root; refusing to keep private keys there`);
  }

  machineDir(name: string): string {
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(name) || name.includes('..')) throw new GhostprepError(`machine name "${name}" cannot name a state directory`);
    return path.join(this.root, name);
  }

  /** Whether anything is kept for this machine (one stat instead of one per file for a new machine). */
  has(machine: string): boolean {
    return existsSync(this.machineDir(machine));
  }

  private listing?: Set<string>;

  /**
   * has(), answered from one listing of the root, read on first use: a plan asks
   * it for each of 10,000 machines (one stat each before). For read-only runs
   * only: a machine another run adds meanwhile is not seen.
   */
  listed(machine: string): boolean {
    this.machineDir(machine); // the same refusal of bad names as has()
    if (!this.listing) {
      try {
        this.listing = new Set(readdirSync(this.root));
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'ENOENT' && code !== 'ENOTDIR') throw err;
        this.listing = new Set();
      }
    }
    return this.listing.has(machine);
  }

  read(machine: string, file: string): Buffer | undefined {
    const p = path.join(this.machineDir(machine), file);
    return existsSync(p) ? readFileSync(p) : undefined;
  }

  /** Atomic write (temp + rename), directories 0700. */
  write(machine: string, file: string, content: Buffer | string, mode = 0o600): void {
    const p = path.join(this.machineDir(machine), file);
    mkdirSync(path.dirname(p), { recursive: true, mode: 0o700 });
    const tmp = `${p}.tmp-${process.pid}-${Date.now()}`;
    writeFileSync(tmp, content, { mode });
    chmodSync(tmp, mode);
    renameSync(tmp, p);
  }
}

/**
 * A per-machine lock in the state dir: two runs applying to the same machine
 * at once would interleave writes into one guest. Shards work on disjoint
 * machines and never meet. A lock whose process is gone from this host is taken
 * over; one held on another host (a state dir on a shared filesystem) is not.
 */
export function lockMachine(state: StateDir, machine: string): () => void {
  const dir = state.machineDir(machine);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return lockOrRefuse(path.join(dir, '.lock'), `machine ${machine}`);
}

export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}
