/**
 * A plan is a list of file changes per machine. It is pure data: assembling
 * it reads the guest but writes nothing; applying it (plan/apply.ts) is the
 * only place that writes.
 */
export interface ChangeBase {
  /** Guest path, absolute. */
  readonly path: string;
  /** Operation that asked for it ("hostname", "ssh-host-keys"…). */
  readonly source: string;
  /** Why, for the plan output ("master's MAC-bound connection"). */
  readonly reason?: string;
}

export interface WriteChange extends ChangeBase {
  readonly op: 'write';
  readonly content: Buffer;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  /** Content is secret (private keys, shadow): never shown, only its hash. */
  readonly secret?: boolean;
  /**
   * The content is generated at apply time (a new SSH host key, a new
   * machine-id) because `plan` keeps the state dir untouched; the diff says so.
   */
  readonly pending?: boolean;
}

export interface DeleteChange extends ChangeBase {
  readonly op: 'delete';
  readonly recursive?: boolean;
}

export interface MkdirChange extends ChangeBase {
  readonly op: 'mkdir';
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
}

export interface SymlinkChange extends ChangeBase {
  readonly op: 'symlink';
  readonly target: string;
}

export type FileChange = WriteChange | DeleteChange | MkdirChange | SymlinkChange;

export function describeMode(mode: number): string {
  return '0' + (mode & 0o7777).toString(8).padStart(3, '0');
}
