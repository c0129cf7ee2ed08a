/**
 * The backend interface. A backend opens guests (a root-filesystem tree, a
 * disk image through libguestfs, an in-memory tree for unit tests) and gives
 * read access for planning and write primitives for applying. It never
 * decides anything: what to write comes from the plan (core/file-change.ts).
 *
 * All paths are absolute guest paths ("/etc/hostname"). Implementations must
 * resolve them inside the guest as if chrooted: a symlink in the guest can
 * never make a read or a write land outside it.
 */
import type { DeviceIdentitySpec, DeviceRenames } from './device-identity.js';

export type FileType = 'file' | 'dir' | 'symlink' | 'other';

export interface FileStat {
  readonly type: FileType;
  /** Permission bits including setuid/setgid/sticky (mode & 0o7777). */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
}

export interface ReadOptions {
  /** Refuse files larger than this (a hostile 2 GiB /etc/os-release). Default 16 MiB. */
  readonly maxBytes?: number;
}

export const DEFAULT_MAX_READ = 16 * 1024 * 1024;

export interface GuestReader {
  /** Contents of a regular file (following symlinks inside the guest); null when it does not exist. */
  readFile(path: string, options?: ReadOptions): Promise<Buffer | null>;
  /** Metadata of the path itself (a final symlink is not followed); null when absent. */
  lstat(path: string): Promise<FileStat | null>;
  /** Metadata after following symlinks inside the guest; null when absent or dangling. */
  stat(path: string): Promise<FileStat | null>;
  /** Entry names of a directory (following symlinks); null when absent or not a directory. Sorted. */
  readdir(path: string): Promise<string[] | null>;
  /** Target of a symlink; null when the path is not a symlink. */
  readlink(path: string): Promise<string | null>;
}

export interface WriteAttributes {
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
}

export interface GuestWriter {
  /** Atomically replace (or create) a regular file: temp file in the same directory, then rename. */
  writeFile(path: string, content: Buffer, attrs: WriteAttributes): Promise<void>;
  /** Create a directory and any missing parents (parents get 0755 root). */
  mkdir(path: string, attrs: WriteAttributes): Promise<void>;
  /** Remove a file, symlink or (recursive) directory; absent is not an error. */
  remove(path: string, options?: { recursive?: boolean }): Promise<void>;
  /** Create or replace a symlink. */
  symlink(target: string, path: string): Promise<void>;
  /**
   * Rename `from` to `to` (same directory in practice: how a transaction sets a deleted
   * path aside and puts it back). Neither final component is followed; `to` is replaced.
   */
  rename(from: string, to: string): Promise<void>;
  chmod(path: string, mode: number): Promise<void>;
  chown(path: string, uid: number, gid: number): Promise<void>;
}

export interface Guest extends GuestReader, GuestWriter {
  /** Human-readable name of what is open ("rootfs:/srv/node01", "clones/node01.qcow2"). */
  readonly description: string;
  readonly readonly: boolean;
  /** Volume groups and LUKS volumes renamed under the guest (OpenOptions.deviceIdentity), when any. */
  readonly deviceRenames?: DeviceRenames;
}

export type TargetKind = 'rootfs' | 'image' | 'device';

export interface TargetSpec {
  readonly kind: TargetKind;
  /** Directory for rootfs, file for image, /dev path for device. */
  readonly path: string;
  /** Image format for images (qcow2, raw, vmdk…), never probed from content. */
  readonly format?: string;
  /** The machine this target belongs to, when known. */
  readonly machine?: string;
  /**
   * Targets with the same key are fresh copies of one image (deploy's clones of one
   * base): same partitions, same filesystems. A backend may inspect the first and open
   * the others the same way (checked cheaply, inspected in full when the check fails).
   */
  readonly layoutKey?: string;
}

export interface OpenOptions {
  readonly readonly: boolean;
  /**
   * Called with every guest of a group the backend opens together (an appliance's
   * batch of disk images) before the group's first `visit`: apply's preflight, so
   * that no image of a batch is written before all of them are checked. Returns
   * whether the guest is to be visited at all. Backends that open each guest on its
   * own (rootfs) leave it to the caller; a visit then receives the same guest object.
   */
  readonly prepare?: (target: TargetSpec, guest: Guest) => Promise<boolean>;
  /** Appliances (or workers) in parallel. */
  readonly jobs?: number;
  /**
   * Key files (passphrase on the first line) for guest LUKS volumes, tried in
   * order on every encrypted volume; default: $GHOSTPREP_LUKS_KEY_FILE.
   */
  readonly luksKeyFiles?: readonly string[];
  /**
   * The LVM and LUKS identity each target's clone is to get (storage.lvm,
   * storage.luks). A backend that can makes it before the guest is opened
   * (read-only: it only reports in Guest.deviceRenames what it would rename).
   */
  readonly deviceIdentity?: (target: TargetSpec) => DeviceIdentitySpec | undefined;
}

/**
 * Called once per target with the opened guest, or with the Error that kept
 * this one target from opening (the others go on).
 */
export type GuestVisitor = (target: TargetSpec, guest: Guest | Error) => Promise<void>;

export interface Backend {
  readonly name: string;
  forEachGuest(targets: readonly TargetSpec[], options: OpenOptions, visit: GuestVisitor): Promise<void>;
}
