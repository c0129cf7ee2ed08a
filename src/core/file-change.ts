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

/** A typed registry value (the types ghostprep writes). */
export type RegistryValue =
  | { readonly type: 'sz' | 'expand_sz'; readonly value: string }
  | { readonly type: 'multi_sz'; readonly value: readonly string[] }
  | { readonly type: 'dword'; readonly value: number };

/** Set (or, with value null, delete) one value; missing keys on the way are created. */
export interface RegistryEdit {
  /** Backslash path below the hive root ("ControlSet001\\Control\\ComputerName\\ComputerName"). */
  readonly key: string;
  readonly name: string;
  readonly value: RegistryValue | null;
}

/**
 * Edits of one registry hive of a Windows guest (`path` is the hive file,
 * /Windows/System32/config/SYSTEM). A kind of its own rather than a rewrite
 * of the whole hive file: hives are tens of MB of binary data, the plan
 * shows the values in .reg syntax, and apply edits them in place through
 * hivex (src/windows/hive.ts). One change per hive and operation.
 */
export interface RegistryChange extends ChangeBase {
  readonly op: 'registry';
  /** How the hive is named in .reg files: HKEY_LOCAL_MACHINE\\SYSTEM. */
  readonly root: string;
  readonly edits: readonly RegistryEdit[];
}

export type FileChange = WriteChange | DeleteChange | MkdirChange | SymlinkChange | RegistryChange;

export function describeMode(mode: number): string {
  return '0' + (mode & 0o7777).toString(8).padStart(3, '0');
}
