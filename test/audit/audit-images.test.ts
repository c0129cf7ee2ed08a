/**
 * audit on disk images: what it reads host-side equals what an appliance
 * reads from the same images (--no-host-read), collisions included; an image
 * it cannot read host-side goes to the appliance. Two appliances: the
 * host-side run's for the one image it cannot place, and the --no-host-read
 * run's for all four (--jobs 1: one appliance, not one per core).
 */
import { expect } from 'chai';
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { ghostprep } from '../helpers/cli.js';
import { stageTree, tempDir } from '../helpers/images.js';

const MiB = 1024 * 1024;
const MID_A = '0123456789abcdef0123456789abcdef';
const MID_B = 'fedcba9876543210fedcba9876543210';

/** A raw GPT disk with one ext4 partition holding `tree`, like the ext4-gpt test image, made without an appliance. */
async function disk(file: string, tree: string, fsUuid: string): Promise<void> {
  await fs.writeFile(file, '');
  await fs.truncate(file, 160 * MiB);
  await execa('sfdisk', ['-q', file], { input: 'label: gpt\nstart=2048, type=linux\n' });
  await execa('mkfs.ext4', ['-q', '-F', '-U', fsUuid, '-d', tree, '-E', `offset=${2048 * 512}`, file, '150M']);
}

interface AuditJson { targets: number; duplicates: Array<{ kind: string; value: string; targets: string[] }>; errors: unknown[]; identities: Array<{ target: string; identity: unknown }> }

describe('audit on images: host-side reads equal the appliance\'s', function () {
  this.timeout(900_000);
  let dir: string;
  before(async () => { dir = await tempDir('ghostprep-audit-img-'); });
  after(async () => { await fs.rm(dir, { recursive: true, force: true }); });

  it('three clones and a copy with an unplaceable /var mount: same identities, same collisions, either way', async () => {
    const tree = await stageTree('ext4-gpt');
    const uuidA = '11111111-2222-4333-8444-555555555555';
    try {
      await fs.writeFile(path.join(tree, 'etc/machine-id'), `${MID_A}\n`);
      await fs.writeFile(path.join(tree, 'etc/fstab'), `UUID=${uuidA} / ext4 defaults 0 1\n`);
      await disk(path.join(dir, 'a.raw'), tree, uuidA);
      // b: its own machine-id, host name and filesystem UUID, the same SSH host keys
      await fs.writeFile(path.join(tree, 'etc/machine-id'), `${MID_B}\n`);
      await fs.writeFile(path.join(tree, 'etc/hostname'), 'node-b\n');
      const uuidB = '66666666-7777-4888-9999-aaaaaaaaaaaa';
      await fs.writeFile(path.join(tree, 'etc/fstab'), `UUID=${uuidB} / ext4 defaults 0 1\n`);
      await disk(path.join(dir, 'b.raw'), tree, uuidB);
      // d: /var from a LABEL= the host-side reader cannot place: read in the appliance
      await fs.writeFile(path.join(tree, 'etc/fstab'), `UUID=${uuidB} / ext4 defaults 0 1\nLABEL=nowhere /var ext4 nofail 0 2\n`);
      await disk(path.join(dir, 'd.raw'), tree, uuidB);
    } finally { await fs.rm(path.dirname(tree), { recursive: true, force: true }); }
    // c: a qcow2 overlay clone of a (shares everything with it)
    await execa('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', path.join(dir, 'a.raw'), '-F', 'raw', path.join(dir, 'c.qcow2')]);

    const targets = ['a.raw', 'b.raw', 'c.qcow2', 'd.raw'].flatMap((f) => ['--target', path.join(dir, f)]);
    const t0 = Date.now();
    const host = ghostprep(['audit', ...targets, '--json', '-v']);
    const hostMs = Date.now() - t0;
    const t1 = Date.now();
    const appliance = ghostprep(['audit', ...targets, '--json', '--no-host-read', '--jobs', '1']);
    const applianceMs = Date.now() - t1;
    console.log(`      audit of 4 images: ${hostMs} ms (3 read host-side, 1 in an appliance), ${applianceMs} ms (all in an appliance)`);
    expect(host.status, host.stderr).to.equal(5);
    expect(appliance.status, appliance.stderr).to.equal(5);
    const h = JSON.parse(host.stdout) as AuditJson;
    const a = JSON.parse(appliance.stdout) as AuditJson;
    expect(h.errors).to.deep.equal([]);
    expect(h.identities).to.deep.equal(a.identities);
    expect(h.duplicates).to.deep.equal(a.duplicates);
    const find = (kind: string, value?: string) => h.duplicates.find((d) => d.kind === kind && (!value || d.value === value))?.targets.map((t) => path.basename(t));
    expect(find('machine-id', MID_A)).to.deep.equal(['a.raw', 'c.qcow2']);
    expect(find('machine-id', MID_B)).to.deep.equal(['b.raw', 'd.raw']);
    expect(find('filesystem-uuid', 'ext 11111111-2222-4333-8444-555555555555')).to.deep.equal(['a.raw', 'c.qcow2']);
    expect(find('ssh-host-key')).to.deep.equal(['a.raw', 'b.raw', 'c.qcow2', 'd.raw']);
    expect(find('gpt-partition-guid')).to.deep.equal(['a.raw', 'c.qcow2']); // sfdisk gave each disk its own; c is a's overlay
    expect(find('dhcp-duid')).to.have.length(2);
  });
});
