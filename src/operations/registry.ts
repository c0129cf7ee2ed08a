/**
 * The operation registry (guestfs-tools sysprep style): each operation is a
 * small file holding its whole record: name, kind, a one-line description,
 * whether it is on by default, its place in the run order, the guests it
 * applies to, and one function. `ghostprep operations`, `seal --list` and
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

/** Whether the operation runs on this guest. */
export function appliesTo(op: Pick<Operation, 'guests'>, distro: Pick<Distro, 'family'>): boolean {
  return op.guests.includes(guestKindOf(distro));
}

const NAME = /^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$/;

/** Why a record cannot be registered, or undefined: the checks that the types cannot make. */
function recordProblem(op: Operation): string | undefined {
  const kind: unknown = op.kind;
  if (kind !== 'customize' && kind !== 'seal') return `its kind is ${JSON.stringify(kind)}, not customize or seal`;
  if (typeof op.name !== 'string' || !NAME.test(op.name)) return 'its name is not lowercase words joined by "-"';
  if (typeof op.description !== 'string' || !op.description.trim()) return 'it has no description';
  if (typeof op.defaultEnabled !== 'boolean') return 'it does not say whether it is on by default (defaultEnabled)';
  if (!Array.isArray(op.guests) || !op.guests.length) return `it does not say which guests it applies to (guests: some of ${GUEST_KINDS.join(', ')})`;
  for (const g of op.guests) if (!(GUEST_KINDS as readonly string[]).includes(g)) return `its guests name ${JSON.stringify(g)}, not one of ${GUEST_KINDS.join(', ')}`;
  if (new Set(op.guests).size !== op.guests.length) return 'its guests name one guest twice';
  if (op.kind === 'customize' && op.order === undefined) return 'it has no order (its position in the run)';
  if (op.kind === 'customize' && !(Number.isSafeInteger(op.order) && op.order > 0)) return `its order ${JSON.stringify(op.order)} is not a positive integer`;
  if (op.kind === 'seal' && op.order !== undefined) return 'seal operations run by name and take no order';
  if (typeof op.plan !== 'function') return 'it has no plan function';
  return undefined;
}

export class OperationRegistry {
  private readonly ops = new Map<string, Operation>();
  /** Refuses an incomplete record, a name registered twice and an order position taken twice (within a kind). */
  register(op: Operation): void {
    const problem = recordProblem(op);
    if (problem) throw new Error(`${String(op.kind)} operation "${String(op.name)}" cannot be registered: ${problem}`);
    const key = `${op.kind}:${op.name}`;
    if (this.ops.has(key)) throw new Error(`${op.kind} operation "${op.name}" is registered twice`);
    const taken = op.order === undefined ? undefined : [...this.ops.values()].find((o) => o.kind === op.kind && o.order === op.order);
    if (taken) throw new Error(`${op.kind} operations "${taken.name}" and "${op.name}" both have order ${op.order}`);
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
  /** The customize operations in the order they run (their `order`, ascending). */
  runOrder(): CustomizeOperation[] {
    return this.list('customize').sort((a, b) => a.order - b.order);
  }
}

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

export function summarize(op: Operation): OperationSummary {
  return { name: op.name, kind: op.kind, description: op.description, defaultEnabled: op.defaultEnabled, order: op.order ?? null, guests: [...op.guests] };
}
