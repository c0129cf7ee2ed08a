/**
 * seal and capture read an ext master host-side (fleet/host-read.ts) and find
 * what the rootfs backend finds in the same tree: the seal check's findings
 * and a dry run's changes are the same either way; a master sealed already
 * is sealed again with no change and no appliance (any appliance launch
 * fails in these cases: LIBGUESTFS_BACKEND names no backend). Images are
 * made by mkfs.ext4 -d on plain files; nothing here launches an appliance.
 */
import { expect } from 'chai';
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import type { TargetSpec } from '../../src/core/backend.js';
import { checkSealTargets } from '../../src/fleet/seal-check.js';
import { readHostSideGuest } from '../../src/fleet/host-read.js';
import { sealTargets, selectSealOperations, type SealResult } from '../../src/fleet/seal.js';
import { stageTree, tempDir } from '../helpers/images.js';

const MiB = 1024 * 1024;

/** A raw GPT disk with one ext4 partition holding `tree`, made without an appliance. */
async function disk(file: string, tree: string): Promise<TargetSpec> {
  await fs.writeFile(file, '');
  await fs.truncate(file, 160 * MiB);
  await execa('sfdisk', ['-q', file], { input: 'label: gpt\nstart=2048, type=linux\n' });
  await execa('mkfs.ext4', ['-q', '-F', '-d', tree, '-E', `offset=${2048 * 512}`, file, '150M']);
  return { kind: 'image', path: file, format: 'raw' };
}

async function withoutAppliance<T>(fn: () => Promise<T>): Promise<T> {
  const saved = process.env.LIBGUESTFS_BACKEND;
  process.env.LIBGUESTFS_BACKEND = 'ghostprep-test-no-appliance';
  try { return await fn(); } finally {
    if (saved === undefined) delete process.env.LIBGUESTFS_BACKEND; else process.env.LIBGUESTFS_BACKEND = saved;
  }
}

const summary = (r: SealResult) => [r.status, r.error, r.changes.map((c) => [c.action, c.change.path, c.change.source])];

describe('seal and capture read an ext master host-side, as the rootfs backend reads its tree', function () {
  this.timeout(300_000);
  let dir: string;
  let tree: string;
  let image: TargetSpec;
  before(async () => {
    dir = await tempDir('ghostprep-seal-host-');
    tree = await stageTree('ext4-gpt');
    image = await disk(path.join(dir, 'master.raw'), tree);
  });
  after(async () => {
    await fs.rm(dir, { recursive: true, force: true });
    await fs.rm(path.dirname(tree), { recursive: true, force: true });
  });

  it('the seal check and a dry run find the same on the image as in the tree', async () => {
    const rootfs: TargetSpec = { kind: 'rootfs', path: tree };
    const ops = selectSealOperations('default');
    const [fromImage, fromTree, dryImage, dryTree] = await withoutAppliance(async () => [
      await checkSealTargets([image]), await checkSealTargets([rootfs]),
      await sealTargets([image], { ops, dryRun: true }), await sealTargets([rootfs], { ops, dryRun: true }),
    ] as const);
    expect(fromImage[0]!.error).to.equal(null);
    expect(fromImage[0]!.findings.map((f) => f.path)).to.include('/etc/machine-id');
    expect(fromImage[0]!.findings).to.deep.equal(fromTree[0]!.findings);
    expect(dryImage[0]!.changes.length).to.be.greaterThan(0);
    expect(summary(dryImage[0]!)).to.deep.equal(summary(dryTree[0]!));
  });

  it('a master sealed already: the seal check finds nothing and a seal changes nothing, with no appliance', async () => {
    const ops = selectSealOperations('default');
    const [sealed] = await sealTargets([{ kind: 'rootfs', path: tree }], { ops, dryRun: false });
    expect(sealed!.status, sealed!.error ?? '').to.equal('ok');
    const master = await disk(path.join(dir, 'sealed.raw'), tree);
    const before = await fs.readFile(master.path);
    const [checked, again] = await withoutAppliance(async () => [await checkSealTargets([master]), await sealTargets([master], { ops, dryRun: false })] as const);
    expect(checked).to.deep.equal([{ target: master.path, findings: [], error: null }]);
    expect(summary(again[0]!)).to.deep.equal(['ok', null, []]);
    expect((await fs.readFile(master.path)).equals(before), 'the image is unchanged').to.equal(true);
  });

  it('an image the host-side reader cannot open goes to the appliance (here: no backend, so it fails)', async () => {
    const blank: TargetSpec = { kind: 'image', path: path.join(dir, 'blank.raw'), format: 'raw' };
    await fs.writeFile(blank.path, Buffer.alloc(MiB));
    expect(await readHostSideGuest(blank, async () => 'read')).to.equal(undefined);
    const [r] = await withoutAppliance(() => sealTargets([blank], { ops: selectSealOperations('default'), dryRun: true }));
    expect(r!.status).to.equal('failed');
  });
});
