/**
 * Half-written machines: each case used to fail after hostname, machine-id,
 * host keys and users were already written, with `changes: []` in the
 * report and known_hosts missing the keys the guest then had. Each must
 * now be refused before any write or rolled back, its tree byte-identical,
 * reported failed with no changes, its keys not exported. And the fleet's
 * targets are checked together: one tree for two machines, nested trees
 * and the host's own / are refused before anything is written.
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { stringify, parse } from 'yaml';
import { checkTargets } from '../../src/fleet/targets.js';
import { copyFixture, tempDir } from '../helpers/rootfs.js';
import { clearFlags, flagged, snapshotDiff, snapshotTree } from '../helpers/hostile-tree.js';
import { gp, show } from '../helpers/trust-run.js';
import { TRUST_PROFILE } from './profile.js';

interface Case {
  readonly name: string;
  readonly profile?: Record<string, unknown>;
  readonly make?: (root: string) => void;
  readonly expect: RegExp;
}

const CASES: Case[] = [
  { name: 'under-file', profile: { files: [{ path: '/etc/hostname/conf', content: 'x\n' }] }, expect: /refused before writing anything: \/etc\/hostname\/conf: \/etc\/hostname is a regular file, not a directory/ },
  {
    name: 'shadow-immutable',
    make: (root) => { execFileSync('chattr', ['+i', path.join(root, 'etc/shadow')]); flagged.push(path.join(root, 'etc/shadow')); },
    expect: /cannot write \/etc\/shadow: operation not permitted.*; rolled back: the machine is as it was$/,
  },
  { name: 'ssh-file', make: (root) => { rmSync(path.join(root, 'etc/ssh'), { recursive: true }); writeFileSync(path.join(root, 'etc/ssh'), 'a file\n'); }, expect: /refused before writing anything: \/etc\/ssh\/ssh_host_ed25519_key: \/etc\/ssh is a regular file, not a directory/ },
  { name: 'root-ssh-out', make: (root) => { rmSync(path.join(root, 'root/.ssh'), { recursive: true, force: true }); symlinkSync('../../../../../../../home/host/.ssh', path.join(root, 'root/.ssh')); }, expect: /refused before writing anything: \/root\/\.ssh is a symlink to \.\.\/.*\/home\/host\/\.ssh, which is not a directory in the guest/ },
];

describe('trust: no half-written machine (preflight, then one transaction per machine)', function () {
  this.timeout(300_000);
  const work = tempDir('ghostprep-half-written-');
  const trees = path.join(work, 'trees');
  const snapshots = new Map<string, Map<string, string>>();
  let args: string[];

  before(() => {
    mkdirSync(path.join(work, 'profiles'), { recursive: true });
    writeFileSync(path.join(work, 'profiles', 'trust.yaml'), TRUST_PROFILE);
    copyFixture('debian12', path.join(trees, 'good'));
    const base = parse(TRUST_PROFILE) as Record<string, unknown>;
    for (const c of CASES) {
      const root = copyFixture('debian12', path.join(trees, c.name));
      c.make?.(root);
      const extra = c.profile ?? {};
      writeFileSync(path.join(work, 'profiles', `${c.name}.yaml`), stringify({ ...base, ...extra, profile: c.name, files: [...(base.files as unknown[]), ...((extra.files as unknown[]) ?? [])] }));
      snapshots.set(c.name, snapshotTree(root));
    }
    const machines = ['good', ...CASES.map((c) => c.name)].map((n, i) => ({ name: n, profile: n === 'good' ? 'trust' : n, mac: `52:54:00:bb:00:${(i + 16).toString(16)}`, ip: `10.9.2.${i + 10}/16` }));
    writeFileSync(path.join(work, 'inv.yaml'), stringify({ machines }));
    args = ['-p', path.join(work, 'profiles'), '-i', path.join(work, 'inv.yaml'), '--target', `rootfs:${trees}/{name}`, '--state', path.join(work, 'state')];
  });

  after(() => {
    clearFlags();
    rmSync(work, { recursive: true, force: true });
  });

  it('each case fails alone, reports no change, exports no key, and leaves its tree byte-identical', async () => {
    const known = path.join(work, 'known_hosts');
    const report = path.join(work, 'report.json');
    const r = await gp(['apply', ...args, '--report', report, '--known-hosts', known], { timeoutMs: 180_000 });
    expect(r.status, show(r)).to.equal(3);
    const rep = JSON.parse(readFileSync(report, 'utf8')) as { machines: Array<{ name: string; status: string; error: string | null; changes: unknown[]; identity: unknown }> };
    const byName = new Map(rep.machines.map((m) => [m.name, m]));
    expect(byName.get('good')?.status).to.equal('ok');
    const problems: string[] = [];
    for (const c of CASES) {
      const m = byName.get(c.name)!;
      if (m.status !== 'failed' || !c.expect.test(m.error ?? '')) problems.push(`${c.name}: expected failed with ${c.expect}, got ${m.status}: ${m.error}`);
      if (m.changes.length || m.identity) problems.push(`${c.name}: the report claims changes or an identity`);
      const diff = snapshotDiff(snapshots.get(c.name)!, snapshotTree(path.join(trees, c.name)));
      if (diff.length) problems.push(`${c.name}: tree changed: ${diff.slice(0, 4).join('; ')}`);
    }
    expect(problems, problems.join('\n')).to.deep.equal([]);
    const hosts = readFileSync(known, 'utf8');
    expect(hosts).to.match(/^good\.trust\.example\.org,good,/m);
    for (const c of CASES) expect(hosts, c.name).to.not.match(new RegExp(`(^|,)${c.name}[ ,]`, 'm'));
  });

  // A profile that names / or a uid out of range is refused by validate, located, before any machine is opened.
  const REFUSED_BY_VALIDATE: Array<{ name: string; profile: Record<string, unknown>; expect: RegExp }> = [
    { name: 'files-root', profile: { files: [{ path: '/', content: 'x\n' }] }, expect: /\/files\/\d+\/path: refusing to write \/ \(the guest's root\)/ },
    { name: 'delete-root', profile: { delete: ['/'] }, expect: /\/delete\/0: refusing to delete \/ \(the guest's root\)/ },
    { name: 'uid-range', profile: { files: [{ path: '/etc/app.conf', content: 'x\n', owner: '4294967296' }] }, expect: /\/files\/\d+\/owner: .*uid 4294967296 is out of range/ },
  ];
  for (const c of REFUSED_BY_VALIDATE) {
    it(`${c.name}: refused by validate, located, before any machine is written`, async () => {
      const dir = path.join(work, 'validate-' + c.name);
      mkdirSync(path.join(dir, 'profiles'), { recursive: true });
      const base = parse(TRUST_PROFILE) as Record<string, unknown>;
      const extra = c.profile;
      writeFileSync(path.join(dir, 'profiles', `${c.name}.yaml`), stringify({ ...base, ...extra, profile: c.name, files: [...(base.files as unknown[]), ...((extra.files as unknown[]) ?? [])] }));
      writeFileSync(path.join(dir, 'inv.yaml'), stringify({ machines: [{ name: c.name, profile: c.name, mac: '52:54:00:bb:02:01', ip: '10.9.4.1/16' }] }));
      const root = copyFixture('debian12', path.join(dir, 'trees', c.name));
      const snap = snapshotTree(root);
      const r = await gp(['apply', '-p', path.join(dir, 'profiles'), '-i', path.join(dir, 'inv.yaml'), '--target', `rootfs:${dir}/trees/{name}`, '--state', path.join(dir, 'state')], { timeoutMs: 120_000 });
      expect(r.status, show(r)).to.equal(1);
      expect(r.stderr).to.match(new RegExp(`${c.name}\\.yaml:\\d+:\\d+: error: ` + c.expect.source));
      expect(snapshotDiff(snap, snapshotTree(root))).to.deep.equal([]);
    });
  }

  it('refuses two machines on one tree, a tree inside another, and the host root, before writing either', async function () {
    // never hand the host's / to a run whose target check is broken
    if (checkTargets([{ name: 'h', target: { kind: 'rootfs', path: '/' } }]).size !== 1) this.skip();
    const shared = copyFixture('debian12', path.join(work, 'shared'));
    const snap = snapshotTree(shared);
    const inv = path.join(work, 'inv-targets.yaml');
    writeFileSync(inv, stringify({ machines: [
      { name: 'one', profile: 'trust', target: `rootfs:${shared}`, mac: '52:54:00:bb:01:01', ip: '10.9.3.1/16' },
      { name: 'two', profile: 'trust', target: `rootfs:${shared}/.`, mac: '52:54:00:bb:01:02', ip: '10.9.3.2/16' },
      { name: 'host', profile: 'trust', target: 'rootfs:/', mac: '52:54:00:bb:01:03', ip: '10.9.3.3/16' },
    ] }));
    // one tree named twice, and the host's / holding it: refused by validate, located, before any run
    const r = await gp(['apply', '-p', path.join(work, 'profiles'), '-i', inv, '--state', path.join(work, 'state2'), '--json'], { timeoutMs: 120_000 });
    expect(r.status, show(r)).to.equal(1);
    const diags = (JSON.parse(r.stdout) as { diagnostics: Array<{ path: string; message: string; line: number }> }).diagnostics;
    expect(diags.find((d) => d.path === '/machines/1/target')?.message, show(r)).to.match(/also the target of machine "one" .*each machine needs a target of its own/);
    expect(diags.find((d) => d.path === '/machines/2/target')?.message).to.match(/contains the target of machine "one"/);
    // the host's / alone passes validate (a tree of its own) and is refused by the run's target check
    const invHost = path.join(work, 'inv-host.yaml');
    writeFileSync(invHost, stringify({ machines: [{ name: 'host', profile: 'trust', target: 'rootfs:/', mac: '52:54:00:bb:01:03', ip: '10.9.3.3/16' }] }));
    const h = await gp(['apply', '-p', path.join(work, 'profiles'), '-i', invHost, '--state', path.join(work, 'state3'), '--json'], { timeoutMs: 120_000 });
    expect(h.status, show(h)).to.equal(1);
    const rep = JSON.parse(h.stdout) as { machines: Array<{ name: string; status: string; error: string }> };
    expect(rep.machines[0]!.error).to.match(/is the host's own root filesystem; refusing to customize it \(--allow-host-root to mean it\)/);
    expect(snapshotDiff(snap, snapshotTree(shared))).to.deep.equal([]);
  });

  it('checkTargets: nested rootfs trees, images inside a tree, symlinked duplicates; 10,000 targets quickly', () => {
    const d = path.join(work, 'nest');
    mkdirSync(path.join(d, 'a/b'), { recursive: true });
    symlinkSync(path.join(d, 'a'), path.join(d, 'link-a'));
    const refused = checkTargets([
      { name: 'outer', target: { kind: 'rootfs', path: path.join(d, 'a') } },
      { name: 'inner', target: { kind: 'rootfs', path: path.join(d, 'a/b') } },
      { name: 'img', target: { kind: 'image', path: path.join(d, 'a/x.qcow2'), format: 'qcow2' } },
      { name: 'alias', target: { kind: 'rootfs', path: path.join(d, 'link-a') } },
      { name: 'fine', target: { kind: 'rootfs', path: path.join(d, 'c') } },
    ]);
    expect(refused.get('inner')).to.match(/is inside the rootfs target of machine (outer|alias)/);
    expect(refused.get('img')).to.match(/is inside the rootfs target of machine (outer|alias)/);
    expect(refused.get('outer')).to.match(/also the target of machine alias/);
    expect(refused.has('fine')).to.equal(false);
    expect(checkTargets([{ name: 'h', target: { kind: 'rootfs', path: '/' } }], { allowHostRoot: true }).size).to.equal(0);
    const many = Array.from({ length: 10_000 }, (_, i) => ({ name: `m${i}`, target: { kind: 'rootfs' as const, path: path.join(d, 'fleet', `m${i}`) } }));
    const t0 = Date.now();
    expect(checkTargets(many).size).to.equal(0);
    expect(Date.now() - t0).to.be.below(5000);
    unlinkSync(path.join(d, 'link-a'));
  });
});
