/**
 * The state dir keeps each machine's generated identity (machine-id, SSH
 * host key pairs) so that re-applying is idempotent and `plan` after `apply`
 * shows no changes. Private keys are 0600 in 0700 directories.
 */
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { GhostprepError } from '../util/errors.js';

export const DEFAULT_STATE_DIR = '.ghostprep/state';

export class StateDir {
  constructor(readonly root: string) {}

  /** Create the root 0700; refuse a world-writable one (anyone could plant keys). */
  ensure(): void {
    mkdirSync(this.root, { recursive: true, mode: 0o700 });
    const st = statSync(this.root);
    if (st.mode & 0o002) throw new GhostprepError(`state dir ${this.root} is world-writable; refusing to keep private keys there (chmod 700 it)`);
  }

  machineDir(name: string): string {
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(name) || name.includes('..')) throw new GhostprepError(`machine name "${name}" cannot name a state directory`);
    return path.join(this.root, name);
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

export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}
