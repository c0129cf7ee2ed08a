/**
 * seal: generalize a master. Each enabled seal operation says what to remove
 * or reset; the changes go through the same diff/apply/verify path as apply.
 */
import type { Guest, GuestReader, TargetSpec } from '../core/backend.js';
import { detectDistro } from '../distro/detect.js';
import { operations, type SealOperation } from '../operations/index.js';
import { applyChanges, verifyChanges } from '../plan/apply.js';
import { effectiveChanges, type EffectiveChange } from '../plan/diff.js';
import { GhostprepError, errorMessage } from '../util/errors.js';
import { lockTarget } from '../util/file-lock.js';
import { backendFor } from './open.js';
import { readHostSideGuest } from './host-read.js';
import { detectWindows } from '../windows/detect.js';

/**
 * `--ops` syntax: a comma list of names, where `default` stands for the
 * operations on by default, `+name` adds and `-name` removes one.
 */
export function selectSealOperations(list: string | undefined): SealOperation[] {
  const all = operations.list('seal');
  const known = new Map(all.map((o) => [o.name, o]));
  const chosen = new Set<string>();
  const words = (list ?? 'default').split(',').map((w) => w.trim()).filter(Boolean);
  if (words.every((w) => w.startsWith('-') || w.startsWith('+'))) words.unshift('default');
  for (const w of words) {
    const name = w.replace(/^[+-]/, '');
    if (name === 'default') { for (const o of all) if (o.defaultEnabled) chosen.add(o.name); continue; }
    if (!known.has(name)) throw new GhostprepError(`--ops: unknown seal operation "${name}" (known: ${all.map((o) => o.name).join(', ')})`);
    if (w.startsWith('-')) chosen.delete(name); else chosen.add(name);
  }
  return all.filter((o) => chosen.has(o.name));
}

export async function planSeal(guest: GuestReader, ops: readonly SealOperation[]): Promise<EffectiveChange[]> {
  if (await detectWindows(guest)) {
    throw new GhostprepError('a Windows guest is generalized inside Windows (sysprep /generalize /oobe /shutdown), not by ghostprep seal; its operations are for Linux');
  }
  const text = (await guest.readFile('/etc/os-release', { maxBytes: 65536 })) ?? (await guest.readFile('/usr/lib/os-release', { maxBytes: 65536 }));
  const distro = detectDistro(text?.toString('utf8'));
  const planned = [];
  for (const op of ops) {
    try {
      planned.push(...(await op.plan({ guest, distro })));
    } catch (err) {
      throw new GhostprepError(`${op.name}: ${errorMessage(err)}`, { cause: err });
    }
  }
  // two operations may name one file (cloud-init's log is also a log): removing it wins
  const deleted = new Set(planned.filter((c) => c.op === 'delete').map((c) => c.path));
  const seen = new Set<string>();
  const unique = planned.filter((c) => {
    if ((deleted.has(c.path) && c.op !== 'delete') || seen.has(c.path)) return false;
    seen.add(c.path);
    return true;
  });
  return effectiveChanges(guest, unique);
}

export interface SealResult { target: string; status: 'ok' | 'failed'; error: string | null; changes: EffectiveChange[] }

export interface SealOptions {
  readonly ops: readonly SealOperation[];
  readonly dryRun: boolean;
  /**
   * Plan each image host-side first (default true; host-read.ts): a dry run,
   * or a seal with nothing left to change (a master sealed already), then
   * needs no appliance. Only images with changes to write go to one.
   */
  readonly hostRead?: boolean;
  readonly onDone?: (r: SealResult) => void;
}

export async function sealTargets(targets: readonly TargetSpec[], opts: SealOptions): Promise<SealResult[]> {
  const results: SealResult[] = [];
  const images: TargetSpec[] = [];
  for (const t of targets.filter((x) => x.kind !== 'rootfs')) {
    const r = opts.hostRead === false ? undefined : await sealHostSide(t, opts);
    if (!r) { images.push(t); continue; }
    results.push(r);
    opts.onDone?.(r);
  }
  const groups = [targets.filter((t) => t.kind === 'rootfs'), images];
  for (const group of groups) {
    if (!group.length) continue;
    const backend = await backendFor(group[0]!.kind);
    await backend.forEachGuest(group, { readonly: opts.dryRun }, async (t, guest) => {
      const name = targetLabel(t);
      const r = guest instanceof Error ? { target: name, status: 'failed' as const, error: guest.message, changes: [] } : await sealOne(name, t, guest, opts);
      results.push(r);
      opts.onDone?.(r);
    });
  }
  // the caller's order, whichever way each target was read
  return results.sort((a, b) => targets.findIndex((t) => targetLabel(t) === a.target) - targets.findIndex((t) => targetLabel(t) === b.target));
}

const targetLabel = (t: TargetSpec): string => (t.kind === 'rootfs' ? `rootfs:${t.path}` : t.path);

/**
 * The seal of an image planned host-side: its result when that plan is all
 * there is to do (a dry run, or no change to make), else undefined and the
 * image goes to an appliance. The target lock is held while the plan is read.
 */
async function sealHostSide(t: TargetSpec, opts: SealOptions): Promise<SealResult | undefined> {
  let unlock: (() => void) | undefined;
  try {
    if (!opts.dryRun) unlock = lockTarget(t.kind, t.path);
    const planned = await readHostSideGuest(t, (guest) => planSeal(guest, opts.ops));
    if (!planned || (!opts.dryRun && planned.value.length)) return undefined;
    return { target: targetLabel(t), status: 'ok', error: null, changes: planned.value };
  } catch {
    return undefined; // a lock held by another run, or anything else: the appliance path reports it
  } finally {
    unlock?.();
  }
}

async function sealOne(name: string, t: TargetSpec, guest: Guest, opts: SealOptions): Promise<SealResult> {
  // a seal and an apply (or two seals) writing one master at once would interleave
  let unlock: (() => void) | undefined;
  try {
    if (!opts.dryRun) unlock = lockTarget(t.kind, t.path);
    const changes = await planSeal(guest, opts.ops);
    if (!opts.dryRun) {
      await applyChanges(guest, changes);
      const problems = await verifyChanges(guest, changes.map((c) => c.change), { checkOwner: false });
      if (problems.length) throw new GhostprepError(`verification failed: ${problems.join('; ')}`);
    }
    return { target: name, status: 'ok', error: null, changes };
  } catch (err) {
    return { target: name, status: 'failed', error: errorMessage(err), changes: [] };
  } finally {
    unlock?.();
  }
}
