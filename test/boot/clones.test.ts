/**
 * Real boots of customized clones: each booted system must report the
 * identity ghostprep gave it (hostname, fqdn, machine-id, SSH host keys as
 * served by sshd, the static address on the MAC-matched, renamed `lan`
 * interface) and none of the master's (no DHCP 10.0.2.15 from the master's
 * ens3 stanza), and the clones must differ from each other and the master.
 *
 * Two ways to get there (a third, qemu-img overlays customized by `ghostprep
 * apply --target DIR/{name}.qcow2`, is not booted: it runs the same apply on
 * the same overlays as deploy does):
 *  - `ghostprep apply --target rootfs:DIR` on copies of the master's tree,
 *    then disk images made from the trees (works without libguestfs);
 *  - `ghostprep deploy` of qcow2 overlays on the master image.
 *
 * Each way makes two clones in one run, and one clone of each way is booted
 * (boot01 of the rootfs run, boot02 of the deploy run; both QEMUs at once).
 * Two boots prove what a boot of every clone would: each boot shows that the
 * running system takes up exactly the identity the run report gives its
 * clone, and the run reports show that the two clones of a run got different
 * identities (from each other and from the master), so their booted systems
 * differ too; the two booted systems, with different names, MACs and
 * addresses, are also compared with each other and with the master. The
 * clone of each run that is not booted is checked from its run report (and,
 * for deploy, from known_hosts).
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { execa } from 'execa';
import {
  bootAndReport, bootPrerequisites, bootScratch, buildDebianBase, buildImageFromTree, copyTree,
  SKIP_BOOT, SKIP_BOOT_REASON, type BootReport, type DebianBase, type Identity, masterIdentity, readReport,
  bootInventory, bootProfile, type BootMachine,
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


/** The assertions on the booted clone `m` of one way, and on the identities of its run. */
function checkClones(m: BootMachine, getBase: () => DebianBase, getIdentities: () => Map<string, Identity>, getReport: () => BootReport): void {
  it('the run gave each clone its own identity, none of the master\'s', async () => {
    const master = await masterIdentity(getBase());
    expect([...getIdentities().keys()].sort()).to.deep.equal(MACHINES.map((x) => x.name));
    const ids = MACHINES.map((x) => getIdentities().get(x.name)!);
    for (const [i, x] of MACHINES.entries()) {
      expect(ids[i]!.hostname, x.name).to.equal(x.name);
      expect(ids[i]!.fqdn, x.name).to.equal(`${x.name}.boot.example.org`);
      expect(ids[i]!.machineId, x.name).to.match(/^[0-9a-f]{32}$/);
      expect(ids[i]!.sshHostKeys.map((k) => k.type).sort(), x.name).to.deep.equal(['ecdsa', 'ed25519']);
      expect(ids[i]!.addresses.map((a) => a.replace(/\/\d+$/, '')), x.name).to.include(x.ip.replace(/\/\d+$/, ''));
    }
    expect(new Set([master.machineId, ...ids.map((i) => i.machineId)]).size).to.equal(ids.length + 1);
    const fps = [...master.fingerprints, ...ids.flatMap((i) => i.sshHostKeys.map((k) => k.sha256))];
    expect(new Set(fps).size).to.equal(fps.length);
  });

  describe(`${m.name} booted with MAC ${m.mac}`, () => {
    const r = (): BootReport => getReport();
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

/** Boot each way's clone (two QEMUs at a time: TCG runs one vCPU per host thread). */
async function bootAll(base: DebianBase, clones: ReadonlyArray<{ image: string; machine: BootMachine; consoleLog: string }>): Promise<BootReport[]> {
  return Promise.all(clones.map((c) => bootAndReport(c.image, {
    kernel: base.kernel, initrd: base.initrd, mac: c.machine.mac, consoleLog: c.consoleLog,
    // two guests share the host: up to 181 s each was measured on a busy 2-core host
    timeoutMs: Number(process.env.GHOSTPREP_BOOT_TIMEOUT_S) * 1000 || 420_000,
  })));
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

/** The clone booted from each way's run (different machines, so the two booted systems can be told apart). */
const BOOTED_ROOTFS = MACHINES[0];
const BOOTED_DEPLOY = MACHINES[1];

describe('boot: clones customized by ghostprep (apply --target rootfs:DIR, and deploy of qcow2 overlays)', function () {
  this.timeout(30 * 60_000);
  let base: DebianBase;
  let scratch: string;
  const ways = {
    rootfs: { identities: new Map<string, Identity>(), report: undefined as BootReport | undefined },
    deploy: { identities: new Map<string, Identity>(), report: undefined as BootReport | undefined },
  };
  let knownHosts: string;

  before(async function () {
    base = await setup(this);
    scratch = bootScratch('clones');

    // rootfs: apply to copies of the master's tree, then disk images of the trees
    const rootfs = path.join(scratch, 'rootfs');
    mkdirSync(rootfs);
    const rootfsInputs = writeInputs(rootfs);
    for (const m of MACHINES) await copyTree(base.rootfs, path.join(rootfs, 'trees', m.name));
    const rootfsReport = path.join(rootfs, 'report.json');
    await ghostprep(['apply', '-p', rootfsInputs.profile, '-i', rootfsInputs.inventory, '--target', `rootfs:${rootfs}/trees/{name}`, '--state', path.join(rootfs, 'state'), '--report', rootfsReport]);
    ways.rootfs.identities = readReport(rootfsReport);
    mkdirSync(path.join(rootfs, 'images'));
    const rootfsImage = await buildImageFromTree(path.join(rootfs, 'trees', BOOTED_ROOTFS.name), path.join(rootfs, 'images', `${BOOTED_ROOTFS.name}.qcow2`));

    // deploy: qcow2 overlays on the master image
    const deploy = path.join(scratch, 'deploy');
    mkdirSync(deploy);
    const deployInputs = writeInputs(deploy);
    const deployReport = path.join(deploy, 'report.json');
    const baseSum = await sha256(base.image);
    // --jobs 1: both clones in one appliance (the default, one per core, launches one per clone)
    knownHosts = path.join(deploy, 'known_hosts');
    await ghostprep(['deploy', '-p', deployInputs.profile, '-i', deployInputs.inventory, '--base', base.image, '--out', path.join(deploy, 'clones'), '--mode', 'overlay', '--jobs', '1', '--state', path.join(deploy, 'state'), '--report', deployReport, '--known-hosts', knownHosts]);
    expect(await sha256(base.image), 'the base image must not be written').to.equal(baseSum);
    ways.deploy.identities = readReport(deployReport);

    [ways.rootfs.report, ways.deploy.report] = await bootAll(base, [
      { image: rootfsImage, machine: BOOTED_ROOTFS, consoleLog: path.join(rootfs, `${BOOTED_ROOTFS.name}.console.log`) },
      { image: path.join(deploy, 'clones', `${BOOTED_DEPLOY.name}.qcow2`), machine: BOOTED_DEPLOY, consoleLog: path.join(deploy, `${BOOTED_DEPLOY.name}.console.log`) },
    ]);
  });
  after(() => { if (scratch && !process.env.GHOSTPREP_BOOT_KEEP) rmSync(scratch, { recursive: true, force: true }); });

  describe('apply --target rootfs:DIR, then disk images of the trees', () => {
    checkClones(BOOTED_ROOTFS, () => base, () => ways.rootfs.identities, () => ways.rootfs.report!);

    it(`the tree of ${BOOTED_DEPLOY.name} (not booted) holds the hostname, machine-id and host keys of the run report`, async () => {
      const tree = path.join(scratch, 'rootfs', 'trees', BOOTED_DEPLOY.name);
      const id = ways.rootfs.identities.get(BOOTED_DEPLOY.name)!;
      expect(readFileSync(path.join(tree, 'etc/hostname'), 'utf8').trim()).to.equal(id.hostname);
      expect(readFileSync(path.join(tree, 'etc/machine-id'), 'utf8').trim()).to.equal(id.machineId);
      const fps: string[] = [];
      for (const k of id.sshHostKeys) fps.push(/SHA256:\S+/.exec((await execa('ssh-keygen', ['-lf', path.join(tree, `etc/ssh/ssh_host_${k.type}_key.pub`)])).stdout)![0]);
      expect(fps.sort()).to.deep.equal(id.sshHostKeys.map((k) => k.sha256).sort());
    });
  });

  describe('deploy of qcow2 overlays on the master image', () => {
    checkClones(BOOTED_DEPLOY, () => base, () => ways.deploy.identities, () => ways.deploy.report!);

    it('deploy --known-hosts names each clone (fqdn, hostname, address) with its keys: those its booted sshd serves, those of the run report', async () => {
      // ssh-keygen -lf on a known_hosts file: "256 SHA256:… n1.boot.example.org,n1,10.0.2.15 (ED25519)"
      const { stdout } = await execa('ssh-keygen', ['-lf', knownHosts]);
      for (const m of MACHINES) {
        const lines = stdout.split('\n').filter((l) => l.split(/\s+/)[2]?.split(',').includes(m.name));
        expect(lines.map((l) => l.split(/\s+/)[2]), m.name).to.deep.equal(lines.map(() => `${m.name}.boot.example.org,${m.name},${m.ip.replace(/\/\d+$/, '')}`));
        const keys = lines.map((l) => l.split(/\s+/)[1]).sort();
        expect(keys, `${m.name}: known_hosts vs the run report`).to.deep.equal(ways.deploy.identities.get(m.name)!.sshHostKeys.map((k) => k.sha256).sort());
        if (m.name === BOOTED_DEPLOY.name) expect(keys, `${m.name}: known_hosts vs what sshd serves`).to.deep.equal(ways.deploy.report!.sshdFingerprints);
      }
    });
  });

  it('the booted clones differ from each other and from the master', async () => {
    const master = await masterIdentity(base);
    const reports = [ways.rootfs.report!, ways.deploy.report!];
    const ids = new Set([master.machineId, ...reports.map((r) => r.machineId)]);
    expect(ids.size).to.equal(reports.length + 1);
    const hostnames = new Set(['master', ...reports.map((r) => r.hostname)]);
    expect(hostnames.size).to.equal(reports.length + 1);
    const fps = [...master.fingerprints, ...reports.flatMap((r) => r.sshFingerprints)];
    expect(new Set(fps).size).to.equal(fps.length);
    const addrs = reports.flatMap((r) => r.addresses.filter((a) => a.family === 'inet').map((a) => a.address));
    expect(new Set(addrs).size).to.equal(addrs.length);
  });
});
