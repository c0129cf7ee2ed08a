/**
 * Real boots of customized clones: each booted system must report the
 * identity ghostprep gave it (hostname, fqdn, machine-id, SSH host keys as
 * served by sshd, the static address on the MAC-matched, renamed `lan`
 * interface) and none of the master's (no DHCP 10.0.2.15 from the master's
 * ens3 stanza), and the clones must differ from each other and the master.
 *
 * Two ways to get there (a third, qemu-img overlays customized by `ghostprep
 * apply --target DIR/{name}.qcow2`, ran the same apply on the same overlays as
 * deploy does and was dropped):
 *  - `ghostprep apply --target rootfs:DIR` on copies of the master's tree,
 *    then disk images made from the trees (works without libguestfs);
 *  - `ghostprep deploy` of qcow2 overlays on the master image.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { execa } from 'execa';
import {
  bootAndReport, bootPrerequisites, bootScratch, buildDebianBase, buildImageFromTree, copyTree,
  SKIP_BOOT, SKIP_BOOT_REASON, type BootReport, type DebianBase, type Identity, masterIdentity, readReport,
  bootInventory, bootProfile,
} from '../helpers/boot.js';
import { REPO } from '../helpers/rootfs.js';

const CLI = path.join(REPO, 'dist/src/cli/main.js');

const PROFILE = bootProfile('real boot test clones');

const MACHINES = [
  { name: 'boot01', mac: '52:54:00:b0:07:01', ip: '10.0.2.21/24' },
  { name: 'boot02', mac: '52:54:00:b0:07:02', ip: '10.0.2.22/24' },
] as const;

const INVENTORY = bootInventory(MACHINES);


function writeInputs(dir: string): { profile: string; inventory: string } {
  const profile = path.join(dir, 'boot.yaml');
  const inventory = path.join(dir, 'inventory.yaml');
  writeFileSync(profile, PROFILE);
  writeFileSync(inventory, INVENTORY);
  return { profile, inventory };
}

async function ghostprep(args: string[]): Promise<void> {
  const r = await execa('node', [CLI, ...args], { all: true, reject: false, env: { LIBGUESTFS_BACKEND_SETTINGS: process.env.LIBGUESTFS_BACKEND_SETTINGS ?? 'force_tcg' } });
  if (r.exitCode !== 0) throw new Error(`ghostprep ${args.join(' ')} exited ${r.exitCode}:\n${r.all}`);
}


/** The assertions shared by both ways of making clones. */
function checkClones(getBase: () => DebianBase, getIdentities: () => Map<string, Identity>, getReports: () => Map<string, BootReport>): void {
  for (const m of MACHINES) {
    describe(`${m.name} booted with MAC ${m.mac}`, () => {
      const r = (): BootReport => getReports().get(m.name)!;
      const id = (): Identity => getIdentities().get(m.name)!;

      it('reports the hostname and fqdn ghostprep gave it', () => {
        expect(r().hostname).to.equal(id().hostname).and.to.equal(m.name);
        expect(r().fqdn).to.equal(id().fqdn).and.to.equal(`${m.name}.boot.example.org`);
      });
      it('reports the machine-id ghostprep gave it', () => {
        expect(id().machineId).to.match(/^[0-9a-f]{32}$/);
        expect(r().machineId).to.equal(id().machineId);
        expect(r().dbusMachineId, '/var/lib/dbus/machine-id').to.equal(id().machineId);
        expect(r().dbusReportedMachineId, 'dbus-uuidgen --get').to.equal(id().machineId);
      });
      it('has exactly the SSH host keys ghostprep gave it, and sshd serves them', () => {
        const expected = id().sshHostKeys.map((k) => k.sha256).sort();
        expect(id().sshHostKeys.map((k) => k.type).sort()).to.deep.equal(['ecdsa', 'ed25519']);
        expect(r().sshFingerprints).to.deep.equal(expected);
        expect(r().sshService).to.equal('active');
        expect(r().sshdFingerprints).to.deep.equal(expected);
      });
      it('brings up its static address on the MAC-matched interface renamed to lan (not the master DHCP on ens3)', () => {
        expect(r().links).to.deep.equal([{ ifname: 'lan', mac: m.mac }]);
        const v4 = r().addresses.filter((a) => a.family === 'inet');
        expect(v4).to.deep.equal([{ ifname: 'lan', family: 'inet', address: m.ip }]);
        expect(id().addresses.map((a) => a.replace(/\/\d+$/, ''))).to.include(m.ip.replace(/\/\d+$/, ''));
        expect(r().routes.join('\n')).to.include('default via 10.0.2.2 dev lan');
        // the master's `allow-hotplug ens3` DHCP stanza must not have run: ens3 is renamed before ifupdown sees it
        expect(r().ifupUnits.filter((u) => u.startsWith('ifup@ens3'))).to.deep.equal([]);
      });
      it('has no failed units', () => {
        expect(r().failedUnits).to.deep.equal([]);
      });
    });
  }

  it('the clones differ from each other and from the master', async () => {
    const master = await masterIdentity(getBase());
    const reports = MACHINES.map((m) => getReports().get(m.name)!);
    const ids = new Set([master.machineId, ...reports.map((r) => r.machineId)]);
    expect(ids.size).to.equal(reports.length + 1);
    const hostnames = new Set(['master', ...reports.map((r) => r.hostname)]);
    expect(hostnames.size).to.equal(reports.length + 1);
    const fps = [...master.fingerprints, ...reports.flatMap((r) => r.sshFingerprints)];
    expect(new Set(fps).size).to.equal(fps.length);
    const addrs = reports.flatMap((r) => r.addresses.filter((a) => a.family === 'inet').map((a) => a.address));
    expect(new Set(addrs).size).to.equal(addrs.length);
  });
}

/** Boot every machine's image (two QEMUs at a time: TCG runs one vCPU per host thread). */
async function bootAll(base: DebianBase, image: (name: string) => string, scratch: string): Promise<Map<string, BootReport>> {
  const reports = await Promise.all(MACHINES.map((m) => bootAndReport(image(m.name), {
    kernel: base.kernel, initrd: base.initrd, mac: m.mac, consoleLog: path.join(scratch, `${m.name}.console.log`),
    // two guests share the host: up to 181 s each was measured on a busy 2-core host
    timeoutMs: Number(process.env.GHOSTPREP_BOOT_TIMEOUT_S) * 1000 || 420_000,
  })));
  return new Map(MACHINES.map((m, i) => [m.name, reports[i]!]));
}

async function sha256(file: string): Promise<string> {
  return (await execa('sha256sum', [file])).stdout.split(' ')[0]!;
}

async function setup(ctx: Mocha.Context): Promise<DebianBase> {
  if (SKIP_BOOT) { console.log(`      ${SKIP_BOOT_REASON}`); ctx.skip(); }
  const missing = await bootPrerequisites();
  if (missing) throw new Error(`boot tests cannot run: ${missing} (set GHOSTPREP_SKIP_BOOT=1 to skip them)`);
  return buildDebianBase();
}

describe('boot: clones customized by ghostprep apply --target rootfs:DIR', function () {
  this.timeout(30 * 60_000);
  let base: DebianBase;
  let scratch: string;
  let identities: Map<string, Identity>;
  let reports: Map<string, BootReport>;

  before(async function () {
    base = await setup(this);
    scratch = bootScratch('rootfs');
    const { profile, inventory } = writeInputs(scratch);
    for (const m of MACHINES) await copyTree(base.rootfs, path.join(scratch, 'trees', m.name));
    const report = path.join(scratch, 'report.json');
    await ghostprep(['apply', '-p', profile, '-i', inventory, '--target', `rootfs:${scratch}/trees/{name}`, '--state', path.join(scratch, 'state'), '--report', report]);
    identities = readReport(report);
    mkdirSync(path.join(scratch, 'images'));
    for (const m of MACHINES) await buildImageFromTree(path.join(scratch, 'trees', m.name), path.join(scratch, 'images', `${m.name}.qcow2`));
    reports = await bootAll(base, (name) => path.join(scratch, 'images', `${name}.qcow2`), scratch);
  });
  after(() => { if (scratch && !process.env.GHOSTPREP_BOOT_KEEP) rmSync(scratch, { recursive: true, force: true }); });

  checkClones(() => base, () => identities, () => reports);
});

describe('boot: clones made by ghostprep deploy (qcow2 overlays on the master image)', function () {
  this.timeout(30 * 60_000);
  let base: DebianBase;
  let scratch: string;
  let identities: Map<string, Identity>;
  let reports: Map<string, BootReport>;
  let knownHosts: string;

  before(async function () {
    base = await setup(this);
    scratch = bootScratch('deploy');
    const { profile, inventory } = writeInputs(scratch);
    const report = path.join(scratch, 'report.json');
    const baseSum = await sha256(base.image);
    // --jobs 1: both clones in one appliance (the default, one per core, launches one per clone)
    knownHosts = path.join(scratch, 'known_hosts');
    await ghostprep(['deploy', '-p', profile, '-i', inventory, '--base', base.image, '--out', path.join(scratch, 'clones'), '--mode', 'overlay', '--jobs', '1', '--state', path.join(scratch, 'state'), '--report', report, '--known-hosts', knownHosts]);
    expect(await sha256(base.image), 'the base image must not be written').to.equal(baseSum);
    identities = readReport(report);
    reports = await bootAll(base, (name) => path.join(scratch, 'clones', `${name}.qcow2`), scratch);
  });
  after(() => { if (scratch && !process.env.GHOSTPREP_BOOT_KEEP) rmSync(scratch, { recursive: true, force: true }); });

  checkClones(() => base, () => identities, () => reports);

  it('deploy --known-hosts names each clone (fqdn, hostname, address) with the keys its booted sshd serves', async () => {
    // ssh-keygen -lf on a known_hosts file: "256 SHA256:… n1.boot.example.org,n1,10.0.2.15 (ED25519)"
    const { stdout } = await execa('ssh-keygen', ['-lf', knownHosts]);
    for (const m of MACHINES) {
      const lines = stdout.split('\n').filter((l) => l.split(/\s+/)[2]?.split(',').includes(m.name));
      expect(lines.map((l) => l.split(/\s+/)[2]), m.name).to.deep.equal(lines.map(() => `${m.name}.boot.example.org,${m.name},${m.ip.replace(/\/\d+$/, '')}`));
      expect(lines.map((l) => l.split(/\s+/)[1]).sort(), `${m.name}: known_hosts vs what sshd serves`).to.deep.equal(reports.get(m.name)!.sshdFingerprints);
    }
  });
});
