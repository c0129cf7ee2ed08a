/**
 * The operation registry (guestfs-tools sysprep style): each operation is a
 * small file that registers a name, a one-line description, whether it is
 * on by default and one function. `ghostprep operations`, `seal --list` and
 * the tables of docs/operations.md (npm run docs) come from these records; a
 * test fails when one is undocumented.
 */
import type { Distro } from '../distro/detect.js';
import type { GuestReader } from '../backends/backend.js';
import type { FileChange } from '../plan/types.js';
import type { RenderedMachine } from '../fleet/prepare.js';
import type { HostKeyPair } from '../identity/ssh-keys.js';
import type { Profile } from '../profile/types.js';

export type OperationKind = 'customize' | 'seal';

export interface ResolvedIdentity {
  /** The machine-id to write; undefined for `machineId: keep`. */
  readonly machineId: string | undefined;
  /** True when values are generated at apply time (plan with no state yet). */
  readonly pending: boolean;
  readonly hostKeys: readonly HostKeyPair[];
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
}

export interface CustomizeOperation extends OperationBase {
  readonly kind: 'customize';
  /** What the operation wants the guest to look like; reads the guest, writes nothing. */
  plan(ctx: OperationContext): Promise<FileChange[]>;
}

export interface SealOperation extends OperationBase {
  readonly kind: 'seal';
  plan(ctx: SealContext): Promise<FileChange[]>;
}

export type Operation = CustomizeOperation | SealOperation;

export class OperationRegistry {
  private readonly ops = new Map<string, Operation>();
  register(op: Operation): void {
    const key = `${op.kind}:${op.name}`;
    if (this.ops.has(key)) throw new Error(`${op.kind} operation "${op.name}" is registered twice`);
    this.ops.set(key, op);
  }
  get(kind: 'customize', name: string): CustomizeOperation | undefined;
  get(kind: 'seal', name: string): SealOperation | undefined;
  get(kind: OperationKind, name: string): Operation | undefined { return this.ops.get(`${kind}:${name}`); }
  /** Sorted by name. */
  list(): Operation[];
  list(kind: 'customize'): CustomizeOperation[];
  list(kind: 'seal'): SealOperation[];
  list(kind?: OperationKind): Operation[] {
    return [...this.ops.values()].filter((o) => !kind || o.kind === kind).sort((a, b) => a.name.localeCompare(b.name));
  }
}
