/**
 * The operation registry (guestfs-tools sysprep style): each operation is a
 * small file that registers a name, a one-line description, whether it is
 * on by default and one function. `--list-operations` and the README table
 * come from these records; a test fails when one is undocumented.
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
}

export interface Operation {
  readonly name: string;
  readonly kind: OperationKind;
  readonly description: string;
  readonly defaultEnabled: boolean;
  /** What the operation wants the guest to look like; reads the guest, writes nothing. */
  plan(ctx: OperationContext): Promise<FileChange[]>;
}

export class OperationRegistry {
  private readonly ops = new Map<string, Operation>();
  register(op: Operation): void {
    if (this.ops.has(op.name)) throw new Error(`operation "${op.name}" is registered twice`);
    this.ops.set(op.name, op);
  }
  get(name: string): Operation | undefined { return this.ops.get(name); }
  /** Sorted by name. */
  list(kind?: OperationKind): Operation[] {
    return [...this.ops.values()].filter((o) => !kind || o.kind === kind).sort((a, b) => a.name.localeCompare(b.name));
  }
}
