/**
 * The engine behind plan and apply: validate everything first, then run each
 * machine through a sequence of small stages: lock, detect the distro,
 * resolve its identity, render, assemble the plan and diff it against the
 * guest, preflight (PLAN_STAGES); apply then writes, verifies and flushes
 * (WRITE_STAGES). A failure in one machine is that machine's result; the
 * others go on. The engine prints nothing: the caller gets its results and
 * warnings through the callbacks of RunOptions.
 */
import type { Backend, Guest, TargetSpec } from '../core/backend.js';
import { MemoryGuest } from '../backends/memory.js';
import { detectDistro } from '../distro/detect.js';
import { type Distro } from '../core/distro.js';
import { fingerprint, keyTypeOf } from '../identity/ssh-keys.js';
import { parseMachineId } from '../identity/machine-id.js';
import { resolveIdentity } from '../identity/resolve.js';
import { lockMachine, sha256, StateDir } from '../identity/state.js';
import { assemblePlan } from '../plan/assemble.js';
import { detectWindows, windowsDistro } from '../windows/detect.js';
import { commitChanges, verifyChanges } from '../plan/apply.js';
import { preflightPlan } from '../plan/preflight.js';
import { effectiveChanges, type EffectiveChange } from '../plan/diff.js';
import { describeMode, type FileChange } from '../core/file-change.js';
import type { MachineReport } from '../report/report.js';
import { GhostprepError, InvalidInputError, errorMessage } from '../util/errors.js';
import { lockTarget } from '../util/file-lock.js';
import { renderMachine } from './prepare.js';
import type { PreparedMachine, RenderedMachine } from '../core/machine.js';
import type { ResolvedIdentity } from '../core/operation.js';
import type { Transaction } from '../plan/transaction.js';
import { backendFor } from './open.js';
import { selectShard, type Shard } from './shard.js';
import { checkTargets, parseTarget } from './targets.js';
import { validateFleet } from './validate-fleet.js';
import { parseCidr } from '../network/ip.js';
import { addressesOf } from '../network/check.js';
import type { DeviceChange } from '../storage/types.js';
import { applyDeviceStage, planDeviceStage, reportDeviceChanges, verifyDeviceStage } from './storage-stage.js';
import { deviceIdentityOf } from '../storage/luks-keys.js';

export interface RunOptions {
  readonly profiles: readonly string[];
  readonly inventory: string;
  readonly target?: string;
  readonly machines?: readonly string[];
  readonly shard?: Shard;
  readonly jobs?: number;
  readonly state: string;
  readonly mode: 'plan' | 'apply';
  readonly onWarning?: (msg: string) => void;
  readonly onMachineDone?: (r: MachineResult, done: number, total: number) => void;
  /**
   * Keep each machine's file changes in the returned results (default). A
   * caller that consumes them in onMachineDone (plan printing as it goes)
   * sets false, so that 10,000 machines' rendered files are not all held at once.
   */
  readonly retainChanges?: boolean;
  /**
   * Put each written file's sha256 into the machine reports (default). The
   * text plan prints no report and sets false: hashing 10,000 machines' files
   * was a tenth of its time.
   */
  readonly reportHashes?: boolean;
  /** Backend for disk images and devices (guestfs); injected so the core does not load it for rootfs runs. */
  readonly imageBackend?: () => Promise<Backend>;
  /** Upper bound of drives in one appliance (guestfs backend); its default otherwise. */
  readonly drivesPerAppliance?: number;
  /** The machines are selected; `total` will be processed. */
  readonly onStart?: (total: number) => void;
  /** A machine's changes are written and are about to be read back (the verify stage starts). */
  readonly onMachineApplied?: (machine: string) => void;
  /** Machines whose image targets are fresh copies of one image (deploy's restored clones), with TargetSpec.layoutKey. */
  readonly layoutKeys?: ReadonlyMap<string, string>;
  /** A rootfs target may be the host's own `/` (--allow-host-root); refused otherwise. */
  readonly allowHostRoot?: boolean;
}

/** Validated input of a run: the selected machines, in inventory order, and the state dir. */
export interface Fleet {
  readonly selected: readonly PreparedMachine[];
  readonly state: StateDir;
}

export interface MachineResult {
  readonly report: MachineReport;
  readonly changes: readonly EffectiveChange[];
  readonly publicKeys: readonly string[];
  /** Block-device changes (storage.newUuids), shown before the file diffs. */
  readonly deviceChanges?: readonly DeviceChange[];
  /** Failed before anything was written to the target (while planning: bad input, a refused plan). */
  readonly failedBeforeWrite?: boolean;
}

export async function runFleet(opts: RunOptions): Promise<MachineResult[]> {
  const fleet = openFleet(opts);
  opts.onStart?.(fleet.selected.length);
  const results: MachineResult[] = [];
  await runMachines(fleet, fleet.selected, opts, (r) => {
    opts.onMachineDone?.(r, results.length + 1, fleet.selected.length);
    results.push(opts.retainChanges === false ? { ...r, changes: [] } : r);
  });
  return sortByInventory(results, fleet.selected);
}

/** Validate the input, select the machines, prepare the state dir (apply). */
export function openFleet(opts: Pick<RunOptions, 'profiles' | 'inventory' | 'machines' | 'shard' | 'state' | 'mode'>): Fleet {
  const { machines, diagnostics } = validateFleet(opts.profiles, opts.inventory);
  const errors = diagnostics.filter((d) => d.severity === 'error');
  if (errors.length) throw new InvalidInputError(diagnostics, `${errors.length} error(s) in the input`);
  const selected = selectMachines(machines, opts.machines, opts.shard);
  const state = new StateDir(opts.state);
  if (opts.mode === 'apply') state.ensure();
  return { selected, state };
}

export function sortByInventory(results: MachineResult[], selected: readonly PreparedMachine[]): MachineResult[] {
  const order = new Map(selected.map((m, i) => [m.name, i]));
  return results.sort((a, b) => order.get(a.report.name)! - order.get(b.report.name)!);
}

/**
 * Process `list` (machines of `fleet`) against their targets; `done` is
 * called once per machine as it finishes. Deploy calls this once per batch
 * of restored clones; runFleet once for everything.
 */
export async function runMachines(fleet: Fleet, list: readonly PreparedMachine[], opts: RunOptions, done: (r: MachineResult) => void): Promise<void> {
  const { state } = fleet;
  const withTargets: Array<{ m: PreparedMachine; t: TargetSpec }> = [];
  for (const m of list) {
    const text = m.entry.target ?? opts.target;
    if (!text) {
      done(await planRenderOnly(m, opts, state));
      continue;
    }
    if (!m.entry.target && !text.includes('{name}') && fleet.selected.length > 1) throw new GhostprepError(`target "${text}" has no {name} but ${fleet.selected.length} machines are selected: use a pattern like 'clones/{name}.qcow2' or --machine NAME`);
    const layoutKey = opts.layoutKeys?.get(m.name);
    try { withTargets.push({ m, t: { ...parseTarget(text, m.name), ...(layoutKey && { layoutKey }) } }); } catch (err) { done(failed(m, text, err)); }
  }
  // the targets together first: a machine whose target is another's, inside another's or the host's / is not touched
  const refused = checkTargets(withTargets.map((x) => ({ name: x.m.name, target: x.t })), { allowHostRoot: opts.allowHostRoot });
  const byKind = new Map<string, Array<{ m: PreparedMachine; t: TargetSpec }>>();
  for (const x of withTargets) {
    const why = refused.get(x.m.name);
    if (why) { done(failed(x.m, x.t.kind === 'rootfs' ? `rootfs:${x.t.path}` : x.t.path, new GhostprepError(why))); continue; }
    const kind = x.t.kind === 'rootfs' ? 'rootfs' : 'image';
    byKind.set(kind, [...(byKind.get(kind) ?? []), x]);
  }
  for (const [kind, list] of byKind) {
    const backend = await backendFor(kind === 'rootfs' ? 'rootfs' : 'image', opts);
    const byPath = new Map(list.map((x) => [x.t.path, x.m]));
    const open = { readonly: opts.mode === 'plan', jobs: opts.jobs, ...(kind === 'image' && { deviceIdentity: (t: TargetSpec) => deviceIdentityOf(renderMachine(byPath.get(t.path)!, undefined, undefined, false).profile.storage, byPath.get(t.path)!.name, state, opts.mode === 'apply') }) };
    if (kind === 'rootfs' && opts.mode === 'apply') {
      // rootfs trees stay open: every machine's preflight runs before the first write to any of them
      const ready: Planned[] = [];
      await backend.forEachGuest(list.map((x) => x.t), open, async (t, guest) => {
        const m = byPath.get(t.path)!;
        if (guest instanceof Error) return done(failed(m, t.path, guest));
        const p = await planMachine(m, guest, t, opts, state);
        if ('report' in p) done(p);
        else ready.push(p);
      });
      await inParallel(ready, opts.jobs ?? 4, async (p) => done(await commitMachine(p)));
    } else if (opts.mode === 'apply') {
      // images: the backend prepares (plans and preflights) every guest of an appliance's
      // batch before it visits (writes) the first; a machine that fails there is not visited
      const ready = new Map<string, Planned>();
      const prepare = async (t: TargetSpec, guest: Guest): Promise<boolean> => {
        const p = await planMachine(byPath.get(t.path)!, guest, t, opts, state);
        if ('report' in p) { done(p); return false; }
        ready.set(t.path, p);
        return true;
      };
      await backend.forEachGuest(list.map((x) => x.t), { ...open, prepare }, async (t, guest) => {
        const m = byPath.get(t.path)!;
        if (guest instanceof Error) return done(failed(m, t.path, guest));
        const p = ready.get(t.path) ?? (await planMachine(m, guest, t, opts, state));
        ready.delete(t.path);
        if ('report' in p) return done(p);
        p.guest = guest;
        done(await commitMachine(p));
      });
    } else {
      await backend.forEachGuest(list.map((x) => x.t), open, async (t, guest) => {
        const m = byPath.get(t.path)!;
        done(guest instanceof Error ? failed(m, t.path, guest) : await processMachine(m, guest, t, opts, state));
      });
    }
  }
}

/** Run `fn` over `items`, at most `jobs` at a time. */
async function inParallel<T>(items: readonly T[], jobs: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => { while (next < items.length) await fn(items[next++]!); };
  await Promise.all(Array.from({ length: Math.min(Math.max(1, jobs), items.length) }, worker));
}

export function selectMachines(machines: readonly PreparedMachine[], names: readonly string[] | undefined, shard: Shard | undefined): PreparedMachine[] {
  let out = [...machines];
  if (names?.length) {
    const known = new Set(machines.map((m) => m.name));
    const unknown = names.filter((n) => !known.has(n));
    if (unknown.length) throw new GhostprepError(`--machine ${unknown.join(', ')}: not in the inventory`);
    out = out.filter((m) => names.includes(m.name));
  }
  return shard ? selectShard(out, shard) : out;
}

function failed(m: PreparedMachine, target: string, err: unknown): MachineResult {
  return { report: { name: m.name, target, status: 'failed', error: errorMessage(err), distro: null, identity: null, changes: [], durationMs: 0 }, changes: [], publicKeys: [] };
}

/**
 * One machine on its way through the stages: where it is, and what each
 * stage found for the next ones. Its locks are held from the lock stage
 * until the machine is reported.
 */
interface MachineRun {
  readonly m: PreparedMachine;
  /** The target's guest; undefined for `plan` without a target. Deploy's image batches give the writing stages another handle to the same guest. */
  guest: Guest | undefined;
  /** What the planning stages read: the guest, or an empty one without a target. */
  readonly g: Guest;
  readonly t: TargetSpec;
  readonly target: string;
  readonly started: number;
  readonly opts: RunOptions;
  readonly state: StateDir;
  devices?: DeviceChange[];
  undoDevices?: () => Promise<string[]>;
  readonly unlock: Array<() => void>;
  distro?: Distro;
  identity?: ResolvedIdentity;
  machineId?: string;
  rendered?: RenderedMachine;
  planned?: FileChange[];
  changes?: EffectiveChange[];
  tx?: Transaction;
}

/** A machine planned and preflighted, its locks held, ready to be committed. */
type Planned = MachineRun & Required<Pick<MachineRun, 'distro' | 'identity' | 'machineId' | 'rendered' | 'changes' | 'devices'>>;

type Stage = (run: MachineRun) => Promise<void>;

/** apply: the machine in this state dir, and the guest itself (runs with another --state dir do not meet the machine's lock). */
const lock: Stage = async (run) => {
  if (run.opts.mode !== 'apply') return;
  run.unlock.push(lockMachine(run.state, run.m.name));
  if (run.guest) run.unlock.push(lockTarget(run.t.kind, run.t.path));
};

const detect: Stage = async (run) => {
  run.distro = run.guest ? await readDistro(run.g) : detectDistro('');
};

/** The identity needs the rendered profile: a first render, then the state dir (or the guest's own machine-id). */
const resolve: Stage = async (run) => {
  const first = renderMachine(run.m, undefined, run.distro!);
  run.identity = await resolveIdentity(first, { state: run.state, readOnly: run.opts.mode === 'plan' });
  run.machineId = run.identity.machineId ?? parseMachineId((await run.g.readFile('/etc/machine-id').catch(() => null))?.toString()) ?? '';
};

/** The render with the identity and the distribution. */
const render: Stage = async (run) => {
  const keys = Object.fromEntries(run.identity!.hostKeys.map((k) => [k.type, k.publicKey]));
  const r = renderMachine(run.m, { machineId: run.machineId!, sshHostKeys: keys }, run.distro!);
  if (r.diagnostics.some((d) => d.severity === 'error')) throw new InvalidInputError(r.diagnostics, r.diagnostics.map((d) => d.message).join('; '));
  run.rendered = r;
};

/** The operations' changes, and what of them differs from the guest. */
const assemble: Stage = async (run) => {
  const { m, g, opts } = run;
  const r = run.rendered!;
  run.planned = await assemblePlan({ guest: g, distro: run.distro!, machine: r, profile: r.profile, identity: run.identity!, renderOnly: !run.guest, warn: (msg) => opts.onWarning?.(`${m.name}: ${msg}`) });
  run.changes = await effectiveChanges(g, run.planned);
};

/** storage.newUuids: the device changes (new filesystem UUIDs, GPT GUIDs) planned from the guest's disks. */
const planDevices: Stage = async (run) => {
  run.devices = await planDeviceStage(run.guest, run.t, run.rendered!.profile, run.m.name);
};

/** The whole plan, not only what differs: a path the plan names is refused even where it changes nothing yet. */
const preflight: Stage = async (run) => {
  if (!run.guest) return;
  // NTFS has no POSIX modes (ntfs-3g shows every file as 0777): the special-mode rule means nothing on Windows
  const allowSpecialModes = run.rendered!.profile.allowSpecialModes === true || run.distro!.family === 'windows';
  const problems = await preflightPlan(run.g, run.planned!, { allowSpecialModes });
  if (problems.length) throw new GhostprepError(`${run.opts.mode === 'apply' ? 'refused before writing anything' : 'apply would refuse this plan'}: ${problems.join('; ')}`);
};

/** Everything up to the first write. A machine that fails here is not touched. */
const PLAN_STAGES: readonly Stage[] = [lock, detect, resolve, render, assemble, planDevices, preflight];

/** The changes as one transaction (plan/transaction.ts). */
const write: Stage = async (run) => {
  // device changes first (the guest unmounted for them), then the files that name the new values
  const undo = await applyDeviceStage(run.guest!, run.devices!);
  run.undoDevices = undo;
  try {
    run.tx = await commitChanges(run.guest!, run.changes!);
  } catch (err) {
    throw await withDevicesUndone(err, undo);
  }
  run.opts.onMachineApplied?.(run.m.name);
};

/** Read back; a mismatch rolls the transaction back. */
const verify: Stage = async (run) => {
  const { guest, changes, tx, opts, m } = run;
  const problems = await verifyChanges(guest!, changes!.map((c) => c.change), { checkOwner: process.getuid?.() === 0 || run.t.kind !== 'rootfs' }).catch((err: unknown) => [errorMessage(err)]);
  problems.push(...(await verifyDeviceStage(guest!, run.devices!).catch((err: unknown) => [errorMessage(err)])));
  if (problems.length) throw await withDevicesUndone(await tx!.failWith(`verification failed: ${problems.join('; ')}`), run.undoDevices!);
  for (const left of await tx!.finish()) opts.onWarning?.(`${m.name}: applied, but a deleted path's backup is left: ${left}`);
};

/** Durable before reported: an appliance killed later must not undo an "ok" (kill -9 test). */
const flush: Stage = async (run) => {
  if (run.changes!.length || run.devices!.length) await (run.guest as Guest & { flush?: () => Promise<void> }).flush?.();
};

/** What apply does after planning, on a machine with a target. */
const WRITE_STAGES: readonly Stage[] = [write, verify, flush];

async function processMachine(m: PreparedMachine, guest: Guest | undefined, t: TargetSpec, opts: RunOptions, state: StateDir): Promise<MachineResult> {
  const p = await planMachine(m, guest, t, opts, state);
  return 'report' in p ? p : commitMachine(p);
}

function release(unlock: Array<() => void>): void {
  for (const r of unlock.reverse()) r();
  unlock.length = 0;
}

function failedRun(run: MachineRun, err: unknown): MachineResult {
  const f = failed(run.m, run.target, err);
  return { ...f, report: { ...f.report, durationMs: Date.now() - run.started } };
}

/** The plan stages. Its locks stay held in the returned Planned until commitMachine. */
async function planMachine(m: PreparedMachine, guest: Guest | undefined, t: TargetSpec, opts: RunOptions, state: StateDir): Promise<Planned | MachineResult> {
  const run: MachineRun = {
    m, guest, g: guest ?? renderOnlyGuest(), t, target: t.kind === 'rootfs' ? `rootfs:${t.path}` : t.path,
    started: Date.now(), opts, state, unlock: [],
  };
  try {
    for (const stage of PLAN_STAGES) await stage(run);
    return run as Planned;
  } catch (err) {
    release(run.unlock);
    return { ...failedRun(run, err), failedBeforeWrite: true };
  }
}

/**
 * Commit a planned machine (apply with a target: the write stages) and
 * report what is on disk: a machine rolled back is `failed` with no changes
 * and no host keys (the guest still has its old ones).
 */
async function commitMachine(run: Planned): Promise<MachineResult> {
  try {
    if (run.opts.mode === 'apply' && run.guest) for (const stage of WRITE_STAGES) await stage(run);
    return machineResult(run);
  } catch (err) {
    return failedRun(run, err);
  } finally {
    release(run.unlock);
  }
}

/** The report of a machine that went through its stages. */
function machineResult(run: Planned): MachineResult {
  const { m, target, started, distro, rendered: r, identity, machineId, changes, devices, opts } = run;
  const addresses = [...new Set([...(m.entry.ip ? [parseCidr(m.entry.ip)?.ip ?? m.entry.ip] : []), ...(r.profile.network ? addressesOf(r.profile.network) : [])])];
  const report: MachineReport = {
    name: m.name, target, status: 'ok', error: null,
    distro: { id: distro.id, versionId: distro.versionId, family: distro.family },
    identity: {
      hostname: r.hostname, fqdn: r.fqdn, machineId: identity.pending ? null : machineId || null,
      sshHostKeys: identity.hostKeys.map((k) => ({ type: keyTypeOf(k.publicKey), sha256: fingerprint(k.publicKey) })),
      addresses,
    },
    changes: changes.map(({ change: c }) => ({
      op: c.op, path: c.path,
      mode: 'mode' in c ? describeMode(c.mode) : null,
      sha256: c.op === 'write' && !c.pending && opts.reportHashes !== false ? sha256(c.content) : null,
    })),
    ...reportDeviceChanges(devices),
    durationMs: Date.now() - started,
  };
  return { report, changes, publicKeys: identity.hostKeys.map((k) => k.publicKey), ...(devices.length && { deviceChanges: devices }) };
}

/** `err` after the machine's device changes are undone too (their failure to undo is added to the message). */
async function withDevicesUndone(err: unknown, undo: () => Promise<string[]>): Promise<Error> {
  const left = await undo().catch((e: unknown) => [errorMessage(e)]);
  if (!left.length) return err instanceof Error ? err : new GhostprepError(errorMessage(err));
  return new GhostprepError(`${errorMessage(err)}; undoing the device changes failed: ${left.join('; ')}`, { cause: err });
}

/** `plan` of a machine without a target: rendered against an empty guest (worker threads call this too). */
export function planRenderOnly(m: PreparedMachine, opts: RunOptions, state: StateDir): Promise<MachineResult> {
  return processMachine(m, undefined, RENDER_ONLY_TARGET, opts, state);
}
const RENDER_ONLY_TARGET: TargetSpec = { kind: 'rootfs', path: '(render only)' };

/** The guest of `plan` without --target: nothing but root's account, so every file shows as new. */
function renderOnlyGuest(): Guest {
  return new MemoryGuest({ '/etc/passwd': 'root:x:0:0:root:/root:/bin/sh\n', '/etc/group': 'root:x:0:\n' }, 'render only', { readonly: true });
}

async function readDistro(g: Guest): Promise<Distro> {
  const text = (await g.readFile('/etc/os-release', { maxBytes: 64 * 1024 })) ?? (await g.readFile('/usr/lib/os-release', { maxBytes: 64 * 1024 }));
  if (!text) {
    const windows = await detectWindows(g);
    if (windows) return windowsDistro(windows);
    throw new GhostprepError('no /etc/os-release or /usr/lib/os-release in the guest (and no Windows system root): cannot tell its distribution');
  }
  return detectDistro(text.toString('utf8'));
}
