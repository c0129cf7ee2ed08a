/**
 * Property tests (fast-check) of preflight + transaction over generated
 * hostile trees (links absolute, relative, climbing, looping, into /proc;
 * files where directories are expected; FIFOs on disk) and generated plans
 * (writes, directories, deletes, symlinks, odd modes and owners), with a
 * fault injected at a generated write: apply either succeeds and verifies,
 * or leaves the tree byte-identical; on disk, nothing beside the tree
 * changes. A run killed at any write is finished by the next one: the same
 * tree as one uninterrupted run, no trash, no journal. The seed is printed on failure and replayed with TRUST_SEED=N.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { execFileSync } from 'node:child_process';
import { lstatSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Guest } from '../../src/core/backend.js';
import { MemoryGuest } from '../../src/backends/memory.js';
import { RootfsGuest } from '../../src/backends/rootfs.js';
import { commitChanges, verifyChanges } from '../../src/plan/apply.js';
import { effectiveChanges } from '../../src/plan/diff.js';
import { preflightPlan } from '../../src/plan/preflight.js';
import { RolledBackError } from '../../src/plan/transaction.js';
import type { FileChange } from '../../src/core/file-change.js';
import { hostPathInside, removeEntry, snapshotDiff, snapshotMemory, snapshotTree } from '../helpers/hostile-tree.js';
import { tempDir } from '../helpers/rootfs.js';
import { count } from '../helpers/trust-counts.js';
import { dyingGuest, faultyGuest } from '../helpers/faulty-guest.js';

const SEED = process.env.TRUST_SEED ? Number(process.env.TRUST_SEED) : Date.now() % 2 ** 31;
/** Longer runs: TRUST_PROPERTY_RUNS=N multiplies the budget. */
const SCALE = Math.max(1, Number(process.env.TRUST_PROPERTY_RUNS ?? 1));

const NAMES = ['a', 'b', 'etc', 'ssh'] as const;
const relPath = fc.array(fc.constantFrom(...NAMES), { minLength: 1, maxLength: 3 }).map((parts) => '/' + parts.join('/'));
const planPath = fc.oneof({ weight: 8, arbitrary: relPath }, { weight: 1, arbitrary: fc.constantFrom('/', '/proc/a', '/run/b', '/dev/a') });
const linkTarget = fc.oneof(
  relPath,
  relPath.map((p) => '../../../..' + p),
  fc.constantFrom('/', '..', '.', 'a', 'a/../b', '/proc/self', '/dev', '../../../../run', 'missing/x'),
);

type TreeSpec = { path: string; kind: 'file' | 'dir' | 'link' | 'fifo'; content: string; mode: number; target: string };
const treeEntry = fc.record({
  path: relPath,
  kind: fc.constantFrom('file', 'dir', 'link', 'fifo') as fc.Arbitrary<TreeSpec['kind']>,
  content: fc.string({ maxLength: 12 }),
  mode: fc.constantFrom(0o644, 0o600, 0o755, 0o4755),
  target: linkTarget,
});

const change: fc.Arbitrary<FileChange> = fc.oneof(
  fc.record({ path: planPath, content: fc.string({ maxLength: 12 }), mode: fc.constantFrom(0o644, 0o600, 0o640, 0o755, 0o4755, 0o666), uid: fc.constantFrom(0, 0, 1000, 1000, 4294967295), gid: fc.constantFrom(0, 42) })
    .map((c) => ({ op: 'write' as const, source: 'prop', path: c.path, content: Buffer.from(c.content), mode: c.mode, uid: c.uid, gid: c.gid })),
  fc.record({ path: planPath, mode: fc.constantFrom(0o755, 0o700, 0o777, 0o1777) })
    .map((c) => ({ op: 'mkdir' as const, source: 'prop', path: c.path, mode: c.mode, uid: 0, gid: 0 })),
  fc.record({ path: planPath, recursive: fc.boolean() }).map((c) => ({ op: 'delete' as const, source: 'prop', path: c.path, recursive: c.recursive })),
  fc.record({ path: planPath, target: linkTarget }).map((c) => ({ op: 'symlink' as const, source: 'prop', path: c.path, target: c.target })),
);

async function expectRejected(p: Promise<unknown>, message: RegExp): Promise<void> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err, 'rejected').to.be.instanceOf(Error);
  expect((err as Error).message).to.match(message);
}

/** One change per path, the last one, as assemblePlan leaves them. */
function dedupe(changes: readonly FileChange[]): FileChange[] {
  const last = new Map(changes.map((c, i) => [c.path, i]));
  return changes.filter((c, i) => last.get(c.path) === i);
}

interface Outcome { readonly kind: 'refused' | 'applied' | 'rolled-back' }

/** Preflight, then commit with a fault at write `k` (0: none), verify; the tree must be applied or identical. */
async function applyOnce(guest: Guest, plan: readonly FileChange[], k: number, allowSpecialModes: boolean, snap: () => Map<string, string>): Promise<Outcome> {
  const before = snap();
  const same = () => expect(snapshotDiff(before, snap())).to.deep.equal([]);
  const changes = dedupe(plan);
  let effective;
  try {
    if ((await preflightPlan(guest, changes, { allowSpecialModes })).length) { same(); return { kind: 'refused' }; }
    effective = await effectiveChanges(guest, changes);
  } catch {
    // a loop, a hostile file the planner cannot read: the machine fails before writing
    same();
    return { kind: 'refused' };
  }
  const g = faultyGuest(guest, k);
  try {
    const tx = await commitChanges(g, effective);
    // as the engine: a verification that cannot even read back is a failed one
    const problems = await verifyChanges(guest, effective.map((e) => e.change), { checkOwner: false }).catch((err: unknown) => [String(err)]);
    if (problems.length) throw await tx.failWith(`verification failed: ${problems.join('; ')}`);
    await tx.finish();
  } catch (err) {
    expect(err, String(err)).to.be.instanceOf(RolledBackError);
    expect((err as Error).message).to.not.include('ROLLBACK INCOMPLETE');
    same();
    return { kind: 'rolled-back' };
  }
  return { kind: 'applied' };
}

function memoryFrom(entries: readonly TreeSpec[]): MemoryGuest {
  const g = new MemoryGuest();
  for (const e of entries) {
    try {
      if (e.kind === 'dir') g.put(e.path, { dir: true, mode: 0o755 });
      else if (e.kind === 'link') g.put(e.path, { symlink: e.target });
      else g.put(e.path, { content: e.content, mode: e.mode });
    } catch { /* a path under a link loop: left out */ }
  }
  // put() makes parents as directories over whatever was there: drop entries left below files and links
  for (const k of [...g.entries.keys()]) {
    for (let d = path.posix.dirname(k); d !== '/'; d = path.posix.dirname(d)) {
      if (g.entries.get(d)?.type !== 'dir') { g.entries.delete(k); break; }
    }
  }
  return g;
}

/** The tree on disk, made without ever following one of its own links (they may point anywhere on the host). */
function rootfsFrom(root: string, entries: readonly TreeSpec[]): void {
  rmSync(root, { recursive: true, force: true });
  mkdirSync(root);
  for (const e of entries) {
    let host: string;
    try { host = hostPathInside(root, e.path); } catch { continue; /* a parent is a file, a link or a FIFO here: left out */ }
    removeEntry(host);
    if (e.kind === 'dir') mkdirSync(host);
    else if (e.kind === 'link') symlinkSync(e.target, host);
    else if (e.kind === 'fifo') execFileSync('mkfifo', [host]);
    else writeFileSync(host, e.content, { mode: e.mode, flag: 'wx' });
  }
}

/** Host paths a tree's links name (/a, /etc/ssh/b, /dev/etc…): none may appear, whatever the tree. */
const HOST_SENTINELS = ['/', '/etc', '/etc/ssh', '/dev', '/run', '/proc/self'].flatMap((d) => NAMES.map((n) => path.posix.join(d, n)).filter((p) => p !== '/etc' && p !== '/etc/ssh'));
const hostIntruders = () => HOST_SENTINELS.filter((p) => { try { lstatSync(p); return true; } catch { return false; } });

describe('trust: preflight + transaction properties over hostile trees', function () {
  this.timeout(300_000);
  const outcomes = { refused: 0, applied: 0, 'rolled-back': 0 };

  after(() => {
    console.log(`      outcomes: ${JSON.stringify(outcomes)} (seed ${SEED})`);
  });

  it('MemoryGuest: every generated plan + tree is applied and verified, or the tree is identical', async () => {
    count('propertyRuns', 400 * SCALE);
    await fc.assert(fc.asyncProperty(fc.array(treeEntry, { maxLength: 10 }), fc.array(change, { minLength: 1, maxLength: 6 }), fc.nat(12), fc.boolean(), async (tree, plan, k, allow) => {
      const g = memoryFrom(tree.filter((e) => e.kind !== 'fifo'));
      const o = await applyOnce(g, plan, k, allow, () => snapshotMemory(g));
      outcomes[o.kind]++;
    }), { seed: SEED, numRuns: 400 * SCALE });
  });

  it('MemoryGuest: a run killed at any write, then run again, leaves the tree of one uninterrupted run (no trash, no journal)', async () => {
    count('propertyRuns', 300 * SCALE);
    let resumed = 0;
    await fc.assert(fc.asyncProperty(fc.array(treeEntry, { maxLength: 10 }), fc.array(change, { minLength: 1, maxLength: 6 }), fc.integer({ min: 1, max: 14 }), async (tree, plan, dieAt) => {
      const changes = dedupe(plan);
      // planned again as operations plan: a delete only of what exists (the killed run may have moved it to its trash)
      const replan = async (g: MemoryGuest): Promise<FileChange[]> => {
        const out: FileChange[] = [];
        for (const c of changes) if (c.op !== 'delete' || (await g.lstat(c.path).catch(() => true))) out.push(c);
        return out;
      };
      const once = memoryFrom(tree.filter((e) => e.kind !== 'fifo'));
      if ((await applyOnce(once, changes, 0, true, () => snapshotMemory(once))).kind !== 'applied') return;
      const g = memoryFrom(tree.filter((e) => e.kind !== 'fifo'));
      // the killed run: whatever it wrote before the kill stays
      await commitChanges(dyingGuest(g, dieAt), await effectiveChanges(g, changes)).then((tx) => tx.finish()).catch(() => undefined);
      // only plans that one run brings to their fixpoint (a second changes nothing) say what the tree must be;
      // others delete what they create through a link, and each run leaves another tree
      if ((await effectiveChanges(once, await replan(once)).catch(() => [null])).length) return;
      // the next run after the kill applies, and leaves the tree of the uninterrupted runs
      const again = await applyOnce(g, await replan(g), 0, true, () => snapshotMemory(g));
      expect(again.kind, 'the run after the kill').to.equal('applied');
      resumed++;
      const left = [...snapshotMemory(g).keys()].filter((p) => p.includes('.ghostprep-'));
      expect(left, 'trash or journal left').to.deep.equal([]);
      expect(snapshotDiff(snapshotMemory(once), snapshotMemory(g))).to.deep.equal([]);
    }), { seed: SEED, numRuns: 300 * SCALE });
    console.log(`      ${resumed} killed runs finished by the next one`);
  });

  it('a plan whose changes land below one another through links is refused before writing (and MemoryGuest fails a write below a file, as a disk does)', async () => {
    // found by the kill-and-resume property: /etc -> a/../b puts /etc/ssh/a below /b/ssh (seed 1401167236);
    // /a -> /etc/a puts /a/a below the link /etc/a the plan makes, so it would be written through it (seed 109)
    const tree: TreeSpec[] = [{ path: '/a/a', kind: 'file', content: '', mode: 0o644, target: '/' }, { path: '/etc', kind: 'link', content: '', mode: 0o644, target: 'a/../b' }];
    const write = (p: string): FileChange => ({ op: 'write', source: 'prop', path: p, content: Buffer.alloc(0), mode: 0o644, uid: 0, gid: 0 });
    const g = memoryFrom(tree);
    expect((await applyOnce(g, [write('/b/ssh'), write('/etc/ssh/a')], 0, true, () => snapshotMemory(g))).kind).to.equal('refused');
    expect(await preflightPlan(g, [write('/b/ssh'), write('/etc/ssh/a')])).to.deep.equal(['/etc/ssh/a is planned below /b/ssh (where it lands), which the plan writes as a file (prop, prop)']);
    // without links, as written and where it lands are the same conflict: said once
    expect(await preflightPlan(memoryFrom([]), [write('/opt/a'), write('/opt/a/b')])).to.deep.equal(['/opt/a/b is planned below /opt/a, which the plan writes as a file (prop, prop)']);
    const linked = memoryFrom([{ path: '/a', kind: 'link', content: '', mode: 0o644, target: '/etc/a' }]);
    const plan: FileChange[] = [{ op: 'symlink', source: 'prop', path: '/etc/a', target: '../../../../run' }, { op: 'symlink', source: 'prop', path: '/a/a', target: '/' }];
    expect(await preflightPlan(linked, plan)).to.deep.equal(['/a/a is planned below /etc/a (where it lands), which the plan makes a symlink of (prop, prop)']);
    const direct = memoryFrom(tree);
    await direct.writeFile('/b', Buffer.from('x'), { mode: 0o644, uid: 0, gid: 0 });
    const before = snapshotMemory(direct);
    await expectRejected(direct.writeFile('/etc/ssh', Buffer.alloc(0), { mode: 0o644, uid: 0, gid: 0 }), /\/b is not a directory/);
    await expectRejected(direct.mkdir('/b/c', { mode: 0o755, uid: 0, gid: 0 }), /\/b is not a directory/);
    await expectRejected(direct.symlink('/x', '/b/d'), /\/b is not a directory/);
    await expectRejected(direct.rename('/a/a', '/b/e'), /\/b is not a directory/);
    expect(snapshotDiff(before, snapshotMemory(direct)), 'a refused write changes nothing').to.deep.equal([]);
  });

  it('rootfs: the same on disk (FIFOs included), and nothing beside the tree changes', async () => {
    const work = tempDir('ghostprep-txn-prop-');
    const root = path.join(work, 'root');
    mkdirSync(path.join(work, 'beside/b'), { recursive: true });
    writeFileSync(path.join(work, 'beside/b/file'), 'keep\n');
    symlinkSync('../root', path.join(work, 'beside/to-root'));
    const beside = snapshotTree(path.join(work, 'beside'));
    expect(hostIntruders(), 'host paths the test watches exist already').to.deep.equal([]);
    try {
      count('propertyRuns', 120 * SCALE);
      await fc.assert(fc.asyncProperty(fc.array(treeEntry, { maxLength: 8 }), fc.array(change, { minLength: 1, maxLength: 5 }), fc.nat(12), fc.boolean(), async (tree, plan, k, allow) => {
        rootfsFrom(root, tree);
        const o = await applyOnce(new RootfsGuest(root, false), plan, k, allow, () => snapshotTree(root));
        outcomes[o.kind]++;
        expect(snapshotDiff(beside, snapshotTree(path.join(work, 'beside')))).to.deep.equal([]);
        expect(hostIntruders(), 'written outside the tree, on the host').to.deep.equal([]);
      }), { seed: SEED, numRuns: 120 * SCALE });
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});
