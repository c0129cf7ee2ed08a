/**
 * The operation records (src/operations/registry.ts registers them): what an
 * operation is, the context it plans in, and the summary the CLI and the
 * manual show.
 */
import type { GuestReader } from './backend.js';
import type { Distro } from './distro.js';
import type { FileChange } from './file-change.js';
import type { RenderedMachine } from './machine.js';
import type { HostKeyType, Profile } from './profile.js';

export type OperationKind = 'customize' | 'seal';

/** The guests an operation can apply to. */
export const GUEST_KINDS = ['linux', 'windows'] as const;

export type GuestKind = (typeof GUEST_KINDS)[number];

/** A Windows guest (its NTFS volume mounted at /) or any other: every other family is a Linux one. */
export function guestKindOf(distro: Pick<Distro, 'family'>): GuestKind {
  return distro.family === 'windows' ? 'windows' : 'linux';
}

export interface ResolvedIdentity {
  /** The machine-id to write; undefined for `machineId: keep`. */
  readonly machineId: string | undefined;
  /** True when values are generated at apply time (plan with no state yet). */
  readonly pending: boolean;
  readonly hostKeys: readonly HostKeyPair[];
  /**
   * A per-machine secret kept in the state dir (a generated Windows password):
   * the kept one, else `make()`'s, kept unless the run is read-only (`pending`).
   * Absent where there is no state dir (unit tests): nothing can be generated.
   */
  readonly stateSecret?: (file: string, make: () => string) => { value: string; pending: boolean };
}

export interface OperationContext {
  readonly guest: GuestReader;
  readonly distro: Distro;
  readonly machine: RenderedMachine;
  readonly profile: Profile;
  readonly identity: ResolvedIdentity;
  /** `plan` without a target: an empty guest, every file new; skip checks against guest contents. */
  readonly renderOnly?: boolean;
  /** Report a risk that does not stop the machine (a Windows master that is not generalized). */
  readonly warn?: (message: string) => void;
}

/** What a seal operation sees: the master, nothing about machines. */
export interface SealContext {
  readonly guest: GuestReader;
  readonly distro: Distro;
}

interface OperationBase {
  readonly name: string;
  readonly description: string;
  readonly defaultEnabled: boolean;
  /** The guests it runs on; on any other guest the operation is skipped (never called). */
  readonly guests: readonly GuestKind[];
}

export interface CustomizeOperation extends OperationBase {
  readonly kind: 'customize';
  /**
   * Its position in the run (ascending; unique among customize operations).
   * Order matters where operations touch the same files: at one path the
   * later operation wins. Numbers leave gaps so that an operation can be
   * placed between two others without renumbering.
   */
  readonly order: number;
  /** What the operation wants the guest to look like; reads the guest, writes nothing. */
  plan(ctx: OperationContext): Promise<FileChange[]>;
}

export interface SealOperation extends OperationBase {
  readonly kind: 'seal';
  /**
   * Seal operations are independent of each other (a removal wins over any
   * other change at its path), so they have no place in a run order: they
   * run by name.
   */
  readonly order?: undefined;
  plan(ctx: SealContext): Promise<FileChange[]>;
}

export type Operation = CustomizeOperation | SealOperation;

/** An operation's record as plain data: what `ghostprep operations --json`, `seal --list --json` and the manual show. */
export interface OperationSummary {
  readonly name: string;
  readonly kind: OperationKind;
  readonly description: string;
  readonly defaultEnabled: boolean;
  /** Its position in the run; null for an operation without one (seal operations run by name). */
  readonly order: number | null;
  readonly guests: readonly GuestKind[];
}


export interface HostKeyPair {
  readonly type: HostKeyType;
  readonly privateKey: Buffer;
  readonly publicKey: string;
}

