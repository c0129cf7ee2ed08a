/**
 * The engine behind plan and apply: validate everything first, then per
 * machine: open its target, detect the distro, resolve identity, render,
 * assemble the plan, diff it against the guest and (apply) write and verify.
 * A failure in one machine is that machine's result; the others go on.
 */
import type { Backend, Guest, TargetSpec } from '../backends/backend.js';
import { MemoryGuest } from '../backends/memory.js';
import { RootfsBackend } from '../backends/rootfs.js';
import { detectDistro, type Distro } from '../distro/detect.js';
import { fingerprint, keyTypeOf } from '../identity/ssh-keys.js';
import { parseMachineId } from '../identity/machine-id.js';
import { resolveIdentity } from '../identity/resolve.js';
import { lockMachine, sha256, StateDir } from '../identity/state.js';
import { assemblePlan } from '../plan/assemble.js';
import { detectWindows, windowsDistro } from '../windows/detect.js';
import { commitChanges, verifyChanges } from '../plan/apply.js';
import { preflightPlan } from '../plan/preflight.js';
import { effectiveChanges, renderDiff, type EffectiveChange } from '../plan/diff.js';
import { describeMode } from '../plan/types.js';
import type { MachineReport } from '../report/report.js';
import { GhostprepError, InvalidInputError, errorMessage } from '../util/errors.js';
import { lockTarget } from '../util/file-lock.js';
import { renderMachine, type PreparedMachine } from './prepare.js';
import { selectShard, type Shard } from './shard.js';
import { checkTargets, parseTarget } from './targets.js';
import { validateFleet } from './validate.js';
import { parseCidr } from '../network/ip.js';
import { addressesOf } from '../network/check.js';

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
    const backend = kind === 'rootfs' ? new RootfsBackend(opts.onWarning) : await loadImageBackend(opts);
    const byPath = new Map(list.map((x) => [x.t.path, x.m]));
    const open = { readonly: opts.mode === 'plan', jobs: opts.jobs };
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
      await inParallel(ready, opts.jobs ?? 4, async (p) => done(await commitMachine(p, opts)));
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
        done('report' in p ? p : await commitMachine({ ...p, guest }, opts));
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

async function loadImageBackend(opts: RunOptions): Promise<Backend> {
  if (opts.imageBackend) return opts.imageBackend();
  const mod = await import('../backends/guestfs/backend.js');
  return new mod.GuestfsBackend(opts.drivesPerAppliance !== undefined ? { drivesPerAppliance: opts.drivesPerAppliance } : {});
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

/** A machine planned and preflighted, its locks held, ready to be committed. */
interface Planned {
  readonly m: PreparedMachine;
  readonly guest: Guest | undefined;
  readonly t: TargetSpec;
  readonly target: string;
  readonly started: number;
  readonly distro: Distro;
  readonly rendered: ReturnType<typeof renderMachine>;
  readonly identity: Awaited<ReturnType<typeof resolveIdentity>>;
  readonly machineId: string;
  readonly changes: EffectiveChange[];
  readonly unlock: Array<() => void>;
}

async function processMachine(m: PreparedMachine, guest: Guest | undefined, t: TargetSpec, opts: RunOptions, state: StateDir): Promise<MachineResult> {
  const p = await planMachine(m, guest, t, opts, state);
  return 'report' in p ? p : commitMachine(p, opts);
}

function release(unlock: Array<() => void>): void {
  for (const r of unlock.reverse()) r();
  unlock.length = 0;
}

/**
 * Everything up to the first write: lock, detect, resolve identity, render,
 * assemble, diff, preflight. A machine that fails here is not touched.
 * Its locks stay held in the returned Planned until commitMachine.
 */
async function planMachine(m: PreparedMachine, guest: Guest | undefined, t: TargetSpec, opts: RunOptions, state: StateDir): Promise<Planned | MachineResult> {
  const started = Date.now();
  const target = t.kind === 'rootfs' ? `rootfs:${t.path}` : t.path;
  const unlock: Array<() => void> = [];
  try {
    if (opts.mode === 'apply') unlock.push(lockMachine(state, m.name));
    // the guest itself: runs with another --state dir do not meet the machine's lock
    if (opts.mode === 'apply' && guest) unlock.push(lockTarget(t.kind, t.path));
    const renderOnly = !guest;
    const g: Guest = guest ?? renderOnlyGuest();
    const distro = renderOnly ? detectDistro('') : await readDistro(g);
    const first = renderMachine(m, undefined, distro);
    const identity = await resolveIdentity(first, { state, readOnly: opts.mode === 'plan' });
    const keys = Object.fromEntries(identity.hostKeys.map((k) => [k.type, k.publicKey]));
    const machineId = identity.machineId ?? parseMachineId((await g.readFile('/etc/machine-id').catch(() => null))?.toString()) ?? '';
    const r = renderMachine(m, { machineId, sshHostKeys: keys }, distro);
    if (r.diagnostics.some((d) => d.severity === 'error')) throw new InvalidInputError(r.diagnostics, r.diagnostics.map((d) => d.message).join('; '));
    const planned = await assemblePlan({ guest: g, distro, machine: r, profile: r.profile, identity, renderOnly, warn: (msg) => opts.onWarning?.(`${m.name}: ${msg}`) });
    const changes = await effectiveChanges(g, planned);
    if (guest) {
      // the whole plan, not only what differs: a path the plan names is refused even where it changes nothing yet
      // NTFS has no POSIX modes (ntfs-3g shows every file as 0777): the special-mode rule means nothing on Windows
      const allowSpecialModes = r.profile.allowSpecialModes === true || distro.family === 'windows';
      const problems = await preflightPlan(g, planned, { allowSpecialModes });
      if (problems.length) throw new GhostprepError(`${opts.mode === 'apply' ? 'refused before writing anything' : 'apply would refuse this plan'}: ${problems.join('; ')}`);
    }
    return { m, guest, t, target, started, distro, rendered: r, identity, machineId, changes, unlock };
  } catch (err) {
    release(unlock);
    const f = failed(m, target, err);
    return { ...f, report: { ...f.report, durationMs: Date.now() - started }, failedBeforeWrite: true };
  }
}

/**
 * Commit a planned machine as one transaction (plan/transaction.ts), verify
 * it, and report what is on disk: a machine rolled back is `failed` with no
 * changes and no host keys (the guest still has its old ones).
 */
async function commitMachine(p: Planned, opts: RunOptions): Promise<MachineResult> {
  const { m, guest, t, target, started, distro, rendered: r, identity, machineId, changes } = p;
  try {
    if (opts.mode === 'apply' && guest) {
      const tx = await commitChanges(guest, changes);
      opts.onMachineApplied?.(m.name);
      const problems = await verifyChanges(guest, changes.map((c) => c.change), { checkOwner: process.getuid?.() === 0 || t.kind !== 'rootfs' }).catch((err: unknown) => [errorMessage(err)]);
      if (problems.length) throw await tx.failWith(`verification failed: ${problems.join('; ')}`);
      for (const left of await tx.finish()) opts.onWarning?.(`${m.name}: applied, but a deleted path's backup is left: ${left}`);
      // durable before reported: an appliance killed later must not undo an "ok" (kill -9 test)
      if (changes.length) await (guest as Guest & { flush?: () => Promise<void> }).flush?.();
    }
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
      durationMs: Date.now() - started,
    };
    return { report, changes, publicKeys: identity.hostKeys.map((k) => k.publicKey) };
  } catch (err) {
    const f = failed(m, target, err);
    return { ...f, report: { ...f.report, durationMs: Date.now() - started } };
  } finally {
    release(p.unlock);
  }
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

export function diffText(r: MachineResult): string {
  return r.changes.map(renderDiff).join('');
}

/**
 * What `plan` prints for one machine: with --json its entry of the machines
 * array (one line, no separator), else its header line and diff. The
 * single-threaded and the parallel plan (fleet/parallel.ts) both print this.
 */
export function planEntry(r: MachineResult, json: boolean): string {
  if (json) return JSON.stringify({ ...r.report, diff: diffText(r) });
  const head = `=== ${r.report.name} (${r.report.target})`;
  let text = r.report.status !== 'ok' ? `${head}: FAILED: ${r.report.error}\n` : `${head}: ${r.changes.length ? `${r.changes.length} change(s)` : 'no changes'}\n`;
  if (r.changes.length) {
    const diff = diffText(r);
    text += diff.endsWith('\n') || diff === '' ? diff : diff + '\n';
  }
  return text;
}
