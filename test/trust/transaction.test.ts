/**
 * A machine's writes are one transaction: a guest that fails its k-th write
 * (for every k) is left byte-identical to before, with the in-memory and the
 * rootfs backend; a committed and verified machine keeps no backup behind.
 */
import { expect } from 'chai';
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Guest } from '../../src/core/backend.js';
import { MemoryGuest } from '../../src/backends/memory.js';
import { RootfsGuest } from '../../src/backends/rootfs.js';
import { commitChanges, verifyChanges } from '../../src/plan/apply.js';
import { effectiveChanges } from '../../src/plan/diff.js';
import { RolledBackError } from '../../src/plan/transaction.js';
import type { FileChange } from '../../src/core/file-change.js';
import { tempDir } from '../helpers/rootfs.js';
import { snapshotDiff, snapshotMemory, snapshotTree } from '../helpers/hostile-tree.js';
import { buildGuestTree, faultyGuest, planUnder, snapshotGuest } from '../helpers/faulty-guest.js';

const w = (p: string, content: string, mode = 0o644, uid = 0, gid = 0): FileChange => ({ op: 'write', source: 'test', path: p, content: Buffer.from(content), mode, uid, gid });

/** One change of every kind, over every kind of prior state. */
const PLAN: FileChange[] = [
  w('/etc/hostname', 'new-name\n', 0o600, 5, 6),
  w('/etc/link', 'was a link\n'),
  w('/opt/new/deep/file', 'created with its parents\n'),
  { op: 'mkdir', source: 'test', path: '/root/.ssh', mode: 0o700, uid: 1000, gid: 1000 },
  { op: 'mkdir', source: 'test', path: '/etc/existing-dir', mode: 0o750, uid: 7, gid: 7 },
  { op: 'delete', source: 'test', path: '/var/lib/tree', recursive: true },
  { op: 'delete', source: 'test', path: '/etc/old.conf' },
  { op: 'delete', source: 'test', path: '/etc/old-link' },
  { op: 'symlink', source: 'test', path: '/etc/localtime', target: '/usr/share/zoneinfo/UTC' },
  { op: 'symlink', source: 'test', path: '/etc/alias', target: 'hostname' },
  w('/etc/passwd', 'root:x:0:0:root:/root:/bin/sh\nops:x:1000:1000::/home/ops:/bin/sh\n', 0o644),
];

function memoryTree(): MemoryGuest {
  const g = new MemoryGuest({
    '/etc/hostname': { content: 'old-name\n', mode: 0o644 },
    '/etc/link': { symlink: '/etc/hostname' },
    '/etc/old.conf': 'old\n',
    '/etc/old-link': { symlink: '../nowhere' },
    '/etc/alias': { symlink: 'old.conf' },
    '/etc/passwd': 'root:x:0:0:root:/root:/bin/sh\n',
    '/root': { dir: true, mode: 0o700 },
    '/etc/existing-dir': { dir: true, mode: 0o755 },
    '/var/lib/tree/a': 'a\n',
    '/var/lib/tree/b/c': { content: 'c\n', mode: 0o600, uid: 3, gid: 4 },
    '/var/lib/tree/l': { symlink: 'a' },
  });
  return g;
}

function rootfsTree(root: string): void {
  rmSync(root, { recursive: true, force: true });
  for (const d of ['etc/existing-dir', 'root', 'var/lib/tree/b']) mkdirSync(path.join(root, d), { recursive: true });
  writeFileSync(path.join(root, 'etc/hostname'), 'old-name\n');
  symlinkSync('/etc/hostname', path.join(root, 'etc/link'));
  writeFileSync(path.join(root, 'etc/old.conf'), 'old\n');
  symlinkSync('../nowhere', path.join(root, 'etc/old-link'));
  symlinkSync('old.conf', path.join(root, 'etc/alias'));
  writeFileSync(path.join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  writeFileSync(path.join(root, 'var/lib/tree/a'), 'a\n');
  writeFileSync(path.join(root, 'var/lib/tree/b/c'), 'c\n', { mode: 0o600 });
  symlinkSync('a', path.join(root, 'var/lib/tree/l'));
}

async function commitWithFault<G extends Guest>(make: () => G, k: number): Promise<{ calls: number; error?: Error }> {
  const g = faultyGuest(make(), k);
  const changes = await effectiveChanges(g, PLAN);
  try {
    const tx = await commitChanges(g, changes);
    const problems = await verifyChanges(g, changes.map((c) => c.change), { checkOwner: true });
    if (problems.length) throw await tx.failWith(problems.join('; '));
    // the writes of the commit itself; finish() only drops backups of a machine already complete
    const calls = g.calls;
    await tx.finish();
    return { calls };
  } catch (err) {
    return { calls: g.calls, error: err as Error };
  }
}

describe('trust: a machine is committed as one transaction', () => {
  it('with every write of the commit failing in turn, the in-memory guest is left identical (rolled back each time)', async () => {
    const clean = await commitWithFault(memoryTree, 0);
    expect(clean.error, clean.error?.message).to.equal(undefined);
    expect(clean.calls).to.be.greaterThan(PLAN.length);
    for (let k = 1; k <= clean.calls; k++) {
      const g = memoryTree();
      const before = snapshotMemory(g);
      const faulty = faultyGuest(g, k);
      const changes = await effectiveChanges(faulty, PLAN);
      let error: unknown;
      try { await commitChanges(faulty, changes); } catch (err) { error = err; }
      expect(error, `k=${k}`).to.be.instanceOf(RolledBackError);
      expect((error as Error).message, `k=${k}`).to.match(/injected failure.*; rolled back: the machine is as it was$/);
      expect(snapshotDiff(before, snapshotMemory(g)), `k=${k}`).to.deep.equal([]);
    }
  });

  it('a committed machine verifies and keeps no backup; a failed verification rolls it back', async () => {
    const g = memoryTree();
    const before = snapshotMemory(g);
    const changes = await effectiveChanges(g, PLAN);
    const tx = await commitChanges(g, changes);
    expect(await verifyChanges(g, PLAN, { checkOwner: true })).to.deep.equal([]);
    expect([...g.entries.keys()].filter((k) => k.includes('ghostprep-'))).to.have.length.greaterThan(0);
    const err = await tx.failWith('verification failed: pretend');
    expect(err.message).to.equal('verification failed: pretend; rolled back: the machine is as it was');
    expect(snapshotDiff(before, snapshotMemory(g))).to.deep.equal([]);
    const again = await commitChanges(g, await effectiveChanges(g, PLAN));
    await again.finish();
    expect([...g.entries.keys()].filter((k) => k.includes('ghostprep-'))).to.deep.equal([]);
    expect(g.text('/etc/hostname')).to.equal('new-name\n');
    expect(g.entries.has('/var/lib/tree')).to.equal(false);
  });

  it('a run killed between commit and clean-up leaves trash that the next plan removes (and shows)', async () => {
    const g = memoryTree();
    // the killed run: committed (deleted paths renamed aside), never finished
    await commitChanges(g, await effectiveChanges(g, PLAN));
    const left = [...g.entries.keys()].filter((k) => k.endsWith('.ghostprep-trash'));
    expect(left).to.have.length.greaterThan(0);
    const resumed = await effectiveChanges(g, PLAN);
    expect(resumed.map((e) => e.change.path).filter((p) => p.endsWith('.ghostprep-trash')).sort()).to.deep.equal(left.sort());
    expect(resumed.every((e) => !e.change.path.endsWith('.ghostprep-trash') || /left by an interrupted run deleting/.test(e.change.reason ?? ''))).to.equal(true);
    const tx = await commitChanges(g, resumed);
    await tx.finish();
    expect([...g.entries.keys()].filter((k) => k.includes('ghostprep-'))).to.deep.equal([]);
    expect(await effectiveChanges(g, PLAN)).to.deep.equal([]);
  });

  it('with every write of the commit failing in turn, a rootfs tree is left identical and nothing beside it changes', async () => {
    const work = tempDir('ghostprep-txn-');
    const root = path.join(work, 'root');
    mkdirSync(path.join(work, 'outside'));
    writeFileSync(path.join(work, 'outside/keep'), 'keep\n');
    try {
      rootfsTree(root);
      const clean = await commitWithFault(() => new RootfsGuest(root, false), 0);
      expect(clean.error, clean.error?.message).to.equal(undefined);
      expect(snapshotTree(root).has('./.ghostprep')).to.equal(false);
      for (let k = 1; k <= clean.calls; k++) {
        rootfsTree(root);
        const before = snapshotTree(work);
        const r = await commitWithFault(() => new RootfsGuest(root, false), k);
        expect(r.error, `k=${k}`).to.be.instanceOf(RolledBackError);
        expect(snapshotDiff(before, snapshotTree(work)), `k=${k}: ${r.error?.message}`).to.deep.equal([]);
      }
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });

  it('the same fixture built through the guest API (as on a disk image) rolls back for every k, in memory', async () => {
    const g = new MemoryGuest();
    await buildGuestTree(g, '/txn');
    const clean = faultyGuest(g, 0);
    await commitChanges(clean, await effectiveChanges(clean, planUnder('/txn')));
    for (let k = 1; k <= clean.calls; k++) {
      const m = new MemoryGuest();
      await buildGuestTree(m, '/txn');
      const before = await snapshotGuest(m, '/');
      const faulty = faultyGuest(m, k);
      let error: unknown;
      try { await commitChanges(faulty, await effectiveChanges(faulty, planUnder('/txn'))); } catch (err) { error = err; }
      expect(error, `k=${k}`).to.be.instanceOf(RolledBackError);
      expect(snapshotDiff(before, await snapshotGuest(m, '/')), `k=${k}`).to.deep.equal([]);
    }
  });
});
