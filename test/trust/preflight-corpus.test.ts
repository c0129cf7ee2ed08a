/**
 * The hostile-tree corpus (fixtures/hostile/CLASS/CASE/case.yaml, see its
 * README): every case applied in one run next to a good machine. A case
 * that fails must fail with its expected message, report no changes and no
 * host keys, and leave its tree byte-identical; nothing outside the trees
 * changes; the good machine is applied.
 */
import { expect } from 'chai';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { runFleet, type MachineResult } from '../../src/fleet/run.js';
import { buildTree, clearFlags, snapshotDiff, snapshotTree, type TreeEntry } from '../helpers/hostile-tree.js';
import { copyFixture, FIXTURES, tempDir } from '../helpers/rootfs.js';
import { TRUST_PROFILE } from './profile.js';

interface HostileCase {
  readonly cls: string;
  readonly name: string;
  readonly why: string;
  readonly tree?: TreeEntry[];
  readonly profile?: Record<string, unknown>;
  readonly expect: string;
  /** `validate`: the input itself is refused (located) before any machine is opened. */
  readonly stage?: 'validate';
}

export const HOSTILE_DIR = path.join(FIXTURES, 'hostile');

export function loadHostileCorpus(): HostileCase[] {
  const out: HostileCase[] = [];
  for (const cls of readdirSync(HOSTILE_DIR, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort()) {
    for (const name of readdirSync(path.join(HOSTILE_DIR, cls)).sort()) {
      const doc = parse(readFileSync(path.join(HOSTILE_DIR, cls, name, 'case.yaml'), 'utf8')) as Omit<HostileCase, 'cls' | 'name'>;
      out.push({ cls, name, ...doc });
    }
  }
  return out;
}

/** The trust profile with a case's additions: its files appended, its other keys replacing. */
function caseProfile(c: HostileCase): string {
  const base = parse(TRUST_PROFILE) as Record<string, unknown>;
  const extra = c.profile ?? {};
  const merged: Record<string, unknown> = { ...base, ...extra, profile: c.name };
  if (extra.files) merged.files = [...(base.files as unknown[]), ...(extra.files as unknown[])];
  return stringify(merged);
}

describe('trust: hostile-tree corpus (preflight, then a transaction)', function () {
  this.timeout(300_000);
  const corpus = loadHostileCorpus();
  const work = tempDir('ghostprep-hostile-corpus-');
  const trees = path.join(work, 'trees');
  const skipped: string[] = [];
  const active: HostileCase[] = [];
  const refusedByValidate = new Map<string, string[]>();
  const snapshots = new Map<string, Map<string, string>>();
  let outsideBefore: Map<string, string>;
  let results: Map<string, MachineResult>;

  before(async () => {
    mkdirSync(path.join(work, 'profiles'), { recursive: true });
    mkdirSync(path.join(work, 'outside'));
    writeFileSync(path.join(work, 'outside', 'host-file'), 'the host\n');
    copyFixture('debian12', path.join(trees, 'good'));
    writeFileSync(path.join(work, 'profiles', 'trust.yaml'), TRUST_PROFILE);
    const { validateFleet } = await import('../../src/fleet/validate-fleet.js');
    for (const c of corpus.filter((x) => x.stage === 'validate')) {
      const dir = path.join(work, 'validate', c.name);
      mkdirSync(dir, { recursive: true });
      writeFileSync(path.join(dir, 'profile.yaml'), caseProfile(c));
      writeFileSync(path.join(dir, 'inv.yaml'), stringify({ machines: [{ name: c.name, profile: c.name, mac: '52:54:00:aa:01:10', ip: '10.9.1.9/16' }] }));
      const errors = validateFleet([path.join(dir, 'profile.yaml')], path.join(dir, 'inv.yaml')).diagnostics.filter((d) => d.severity === 'error');
      refusedByValidate.set(c.name, errors.map((d) => `${path.basename(d.file ?? '')}:${d.line}:${d.col}: ${d.path}: ${d.message}`));
    }
    for (const c of corpus.filter((x) => x.stage !== 'validate')) {
      const root = path.join(trees, c.name);
      copyFixture('debian12', root);
      try {
        buildTree(root, c.tree ?? []);
      } catch (err) {
        // mknod and chattr need root and a filesystem that has them
        skipped.push(`${c.cls}/${c.name}: ${(err as Error).message.split('\n')[0]}`);
        continue;
      }
      active.push(c);
      writeFileSync(path.join(work, 'profiles', `${c.name}.yaml`), caseProfile(c));
    }
    const machines = ['good', ...active.map((c) => c.name)].map((n, i) => ({ name: n, profile: n === 'good' ? 'trust' : n, mac: `52:54:00:aa:00:${(i + 16).toString(16)}`, ip: `10.9.1.${i + 10}/16` }));
    writeFileSync(path.join(work, 'inv.yaml'), stringify({ machines }));
    for (const c of active) snapshots.set(c.name, snapshotTree(path.join(trees, c.name)));
    outsideBefore = snapshotTree(path.join(work, 'outside'));
    const v = validateFleet([path.join(work, 'profiles')], path.join(work, 'inv.yaml')).diagnostics.filter((d) => d.severity === 'error');
    if (v.length) throw new Error(v.map((d) => `${d.file}:${d.line}: ${d.message}`).join('\n'));
    const r = await runFleet({ profiles: [path.join(work, 'profiles')], inventory: path.join(work, 'inv.yaml'), target: `rootfs:${trees}/{name}`, state: path.join(work, 'state'), mode: 'apply', jobs: 2 });
    results = new Map(r.map((x) => [x.report.name, x]));
  });

  after(() => {
    clearFlags();
    rmSync(work, { recursive: true, force: true });
  });

  it('holds at least 30 cases in the four classes', () => {
    expect(corpus.length).to.be.at.least(30);
    expect([...new Set(corpus.map((c) => c.cls))]).to.deep.equal(['immutable-readonly', 'links-out', 'special-files', 'wrong-types']);
    if (skipped.length) console.log(`      (skipped on this host: ${skipped.join('; ')})`);
  });

  it('the good machine is applied', () => {
    expect(results.get('good')?.report.status, results.get('good')?.report.error ?? '').to.equal('ok');
  });

  it('each case ends as expected; a failed one reports nothing written and its tree is byte-identical', () => {
    const problems: string[] = [];
    for (const c of active) {
      const r = results.get(c.name)!;
      const got = r.report.status === 'ok' ? 'ok' : r.report.error ?? '';
      if (process.env.TRUST_VERBOSE) console.log(`      ${c.cls}/${c.name}: ${got}`);
      if (c.expect === 'ok') {
        if (r.report.status !== 'ok') problems.push(`${c.cls}/${c.name} (${c.why}): expected ok, got: ${got}`);
        continue;
      }
      if (r.report.status !== 'failed' || !got.includes(c.expect)) problems.push(`${c.cls}/${c.name} (${c.why}): expected a failure with "${c.expect}", got ${r.report.status}: ${got}`);
      if (r.report.changes.length || r.publicKeys.length || r.report.identity) problems.push(`${c.cls}/${c.name}: a failed machine reports changes, identity or keys`);
      const diff = snapshotDiff(snapshots.get(c.name)!, snapshotTree(path.join(trees, c.name)));
      if (diff.length) problems.push(`${c.cls}/${c.name}: tree changed: ${diff.slice(0, 5).join('; ')}`);
    }
    expect(problems, problems.join('\n')).to.deep.equal([]);
  });

  it('a case whose input validate refuses gets a located error with its expected text', () => {
    const problems: string[] = [];
    for (const [name, errors] of refusedByValidate) {
      const c = corpus.find((x) => x.name === name)!;
      if (!errors.some((e) => /^profile\.yaml:\d+:\d+: \//.test(e) && e.includes(c.expect))) problems.push(`${c.cls}/${name}: expected a located validate error with "${c.expect}", got: ${errors.join(' | ') || 'none'}`);
    }
    expect(problems, problems.join('\n')).to.deep.equal([]);
  });

  it('nothing outside the trees changed', () => {
    expect(snapshotDiff(outsideBefore, snapshotTree(path.join(work, 'outside')))).to.deep.equal([]);
  });
});
