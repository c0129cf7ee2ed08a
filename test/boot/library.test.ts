/**
 * Real boots of the ghost-imaging loop, on a copy of the Debian 12
 * master of the boot harness (the cached image is never written):
 *
 *  1. seal → capture into a library → `images verify` → `deploy --base
 *     library:debian12` of three clones → boot one clone: it reports exactly
 *     the identity of the deploy report (hostname, machine-id, SSH host keys,
 *     static address), none of the master's;
 *  2. the plain ghost-imaging case: two qcow2 overlays of the sealed master,
 *     booted without any ghostprep apply: systemd's first boot replaces
 *     "uninitialized" by a fresh machine-id and the run-once
 *     ghostprep-ssh-keygen.service makes fresh SSH host keys before sshd
 *     starts — different from the master's and from each other's.
 *
 * The master is sealed once for both. The library clone boots alone, the two
 * plain clones together (TCG on 2 cores).
 */
import { copyFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { execa } from 'execa';
import {
  bootAndReport, bootPrerequisites, bootScratch, buildDebianBase,
  SKIP_BOOT, SKIP_BOOT_REASON, type BootReport, type DebianBase, type Identity, masterIdentity, readReport,
  bootInventory, bootProfile,
} from '../helpers/boot.js';
import { REPO } from '../helpers/rootfs.js';

const CLI = path.join(REPO, 'dist/src/cli/main.js');
const BOOT_TIMEOUT_MS = Number(process.env.GHOSTPREP_BOOT_TIMEOUT_S) * 1000 || 360_000;
/** Two first boots at a time on a busy 2-core host: generous. */
const PARALLEL_BOOT_TIMEOUT_MS = Number(process.env.GHOSTPREP_BOOT_TIMEOUT_S) * 1000 || 480_000;
const HEX32 = /^[0-9a-f]{32}$/;

const PROFILE = bootProfile('real boot test clones restored from the image library');

const MACHINES = [
  { name: 'lib01', mac: '52:54:00:b1:07:01', ip: '10.0.2.31/24' },
  { name: 'lib02', mac: '52:54:00:b1:07:02', ip: '10.0.2.32/24' },
  { name: 'lib03', mac: '52:54:00:b1:07:03', ip: '10.0.2.33/24' },
] as const;
/** The clone that is booted (one boot keeps the suite short; the other two are checked from the report). */
const BOOTED = MACHINES[1];

const INVENTORY = bootInventory(MACHINES);


const log = (msg: string): void => { console.log(`      [library] ${msg}`); };

async function ghostprep(args: string[]): Promise<{ stdout: string; ms: number }> {
  const t0 = Date.now();
  const r = await execa('node', [CLI, ...args], { all: true, reject: false, env: { LIBGUESTFS_BACKEND_SETTINGS: 'force_tcg' } });
  if (r.exitCode !== 0) throw new Error(`ghostprep ${args.join(' ')} exited ${r.exitCode}:\n${r.all}`);
  const ms = Date.now() - t0;
  log(`ghostprep ${args[0]}${args[0] === 'images' ? ` ${args[1]}` : ''}: ${(ms / 1000).toFixed(1)} s`);
  return { stdout: r.stdout, ms };
}


async function sha256(file: string): Promise<string> {
  return (await execa('sha256sum', [file])).stdout.split(' ')[0]!;
}

describe('boot: the ghost-imaging loop on the real Debian master (seal, capture, library)', function () {
  this.timeout(30 * 60_000);
  let base: DebianBase;
  let master: { machineId: string; fingerprints: string[] };
  let scratch: string;
  let sealed: string;

  before(async function () {
    if (SKIP_BOOT) { console.log(`      ${SKIP_BOOT_REASON}`); this.skip(); }
    const missing = await bootPrerequisites();
    if (missing) throw new Error(`boot tests cannot run: ${missing} (set GHOSTPREP_SKIP_BOOT=1 to skip them)`);
    if ((await execa('sh', ['-c', 'command -v guestfish'], { reject: false })).exitCode !== 0) {
      throw new Error('guestfish not found: install libguestfs-tools (see .ci/apt-packages.d/guestfs.txt), or set GHOSTPREP_SKIP_BOOT=1');
    }
    base = await buildDebianBase();
    master = await masterIdentity(base);
    scratch = bootScratch('library');
    const baseSum = await sha256(base.image);
    // seal a copy: the cached master is never written
    sealed = path.join(scratch, 'master.qcow2');
    copyFileSync(base.image, sealed);
    await ghostprep(['seal', '--target', sealed]);
    expect(await sha256(base.image), 'the cached master image must not be written').to.equal(baseSum);
  });
  after(() => { if (scratch && !process.env.GHOSTPREP_BOOT_KEEP) rmSync(scratch, { recursive: true, force: true }); });

  describe('seal → capture → images verify → deploy --base library:debian12 → boot a clone', () => {
    const library = (): string => path.join(scratch, 'library');
    let identities: Map<string, Identity>;
    let report: BootReport;

    before(async () => {
      await ghostprep(['capture', '--target', sealed, '--library', library(), '--name', 'debian12']);
      await ghostprep(['images', 'verify', '--library', library()]);
      const inputs = path.join(scratch, 'inputs');
      mkdirSync(inputs, { recursive: true });
      writeFileSync(path.join(inputs, 'boot.yaml'), PROFILE);
      writeFileSync(path.join(inputs, 'inventory.yaml'), INVENTORY);
      const runReport = path.join(scratch, 'deploy-report.json');
      await ghostprep(['deploy', '-p', path.join(inputs, 'boot.yaml'), '-i', path.join(inputs, 'inventory.yaml'), '--base', 'library:debian12', '--library', library(),
        '--out', path.join(scratch, 'clones'), '--jobs', '1', '--state', path.join(scratch, 'state'), '--report', runReport]); // one appliance for the three
      identities = readReport(runReport);
      report = await bootAndReport(path.join(scratch, 'clones', `${BOOTED.name}.qcow2`), {
        kernel: base.kernel, initrd: base.initrd, mac: BOOTED.mac, timeoutMs: BOOT_TIMEOUT_MS, consoleLog: path.join(scratch, `${BOOTED.name}.console.log`),
      });
    });

    it('the library image is still intact after the deploy (images verify exits 0)', async () => {
      const { stdout } = await ghostprep(['images', 'verify', '--library', library(), '--json']);
      expect(stdout).to.include('debian12');
    });

    it('deployed three clones, each with its own identity', () => {
      expect([...identities.keys()].sort()).to.deep.equal(MACHINES.map((m) => m.name));
      const ids = MACHINES.map((m) => identities.get(m.name)!);
      for (const id of ids) expect(id.machineId).to.match(HEX32);
      expect(new Set([master.machineId, ...ids.map((i) => i.machineId)]).size).to.equal(MACHINES.length + 1);
      const fps = [...master.fingerprints, ...ids.flatMap((i) => i.sshHostKeys.map((k) => k.sha256))];
      expect(new Set(fps).size).to.equal(fps.length);
    });

    describe(`${BOOTED.name} booted with MAC ${BOOTED.mac}`, () => {
      const id = (): Identity => identities.get(BOOTED.name)!;

      it('reports the hostname and fqdn of the deploy report', () => {
        expect(report.hostname).to.equal(id().hostname).and.to.equal(BOOTED.name);
        expect(report.fqdn).to.equal(id().fqdn).and.to.equal(`${BOOTED.name}.boot.example.org`);
      });
      it('reports the machine-id of the deploy report (also libdbus), not the master\'s', () => {
        expect(id().machineId).to.match(HEX32);
        expect(report.machineId).to.equal(id().machineId).and.not.equal(master.machineId);
        expect(report.dbusReportedMachineId, 'dbus-uuidgen --get').to.equal(id().machineId);
      });
      it('has exactly the SSH host keys of the deploy report, and sshd serves them (apply removed the sealed master\'s keygen unit, so no other key types appear)', () => {
        const expected = id().sshHostKeys.map((k) => k.sha256).sort();
        expect(id().sshHostKeys.map((k) => k.type).sort()).to.deep.equal(['ecdsa', 'ed25519']);
        expect(report.sshFingerprints).to.deep.equal(expected);
        expect(report.sshService).to.equal('active');
        expect(report.sshdFingerprints).to.deep.equal(expected);
        for (const fp of expected) expect(master.fingerprints).to.not.include(fp);
      });
      it('brings up the static address of the deploy report on the MAC-matched interface renamed lan', () => {
        expect(report.links).to.deep.equal([{ ifname: 'lan', mac: BOOTED.mac }]);
        expect(report.addresses.filter((a) => a.family === 'inet')).to.deep.equal([{ ifname: 'lan', family: 'inet', address: BOOTED.ip }]);
        expect(id().addresses.map((a) => a.replace(/\/\d+$/, ''))).to.include(BOOTED.ip.replace(/\/\d+$/, ''));
        expect(report.routes.join('\n')).to.include('default via 10.0.2.2 dev lan');
        expect(report.ifupUnits.filter((u) => u.startsWith('ifup@ens3'))).to.deep.equal([]);
      });
      it('has no failed units', () => {
        expect(report.failedUnits).to.deep.equal([]);
      });
    });
  });

  describe('a sealed master booted without ghostprep (two qemu-img overlays, no apply)', () => {
    const CLONES = [
      { name: 'plain1', mac: '52:54:00:b1:08:01' },
      { name: 'plain2', mac: '52:54:00:b1:08:02' },
    ] as const;
    const reports = new Map<string, BootReport>();
    const r = (name: string): BootReport => reports.get(name)!;

    before(async () => {
      const sealedSum = await sha256(sealed);
      for (const c of CLONES) await execa('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', sealed, path.join(scratch, `${c.name}.qcow2`)]);
      // Two QEMUs at a time (as in clones.test.ts): one at a time, a first boot that makes an RSA
      // host key under TCG takes 95-180 s each, which would put this file well over 6 minutes.
      const booted = await Promise.all(CLONES.map((c) => bootAndReport(path.join(scratch, `${c.name}.qcow2`), {
        kernel: base.kernel, initrd: base.initrd, mac: c.mac, timeoutMs: PARALLEL_BOOT_TIMEOUT_MS, consoleLog: path.join(scratch, `${c.name}.console.log`),
      })));
      CLONES.forEach((c, i) => reports.set(c.name, booted[i]!));
      expect(await sha256(sealed), 'the sealed master must not be written by booting its overlays').to.equal(sealedSum);
    });

    for (const c of CLONES) {
      describe(c.name, () => {
        it('has a valid machine-id of its own, made at first boot (not "uninitialized", not the master\'s)', () => {
          expect(r(c.name).machineId).to.match(HEX32).and.not.equal(master.machineId);
          expect(r(c.name).dbusReportedMachineId, 'dbus-uuidgen --get').to.equal(r(c.name).machineId);
        });
        it('has fresh SSH host keys (ssh-keygen -A at first boot), served by sshd', () => {
          expect(r(c.name).sshKeys.map((k) => k.type).sort()).to.deep.equal(['ecdsa', 'ed25519', 'rsa']);
          expect(r(c.name).sshService).to.equal('active');
          expect(r(c.name).sshdFingerprints).to.deep.equal(r(c.name).sshFingerprints);
          for (const fp of r(c.name).sshFingerprints) expect(master.fingerprints).to.not.include(fp);
        });
        it('keeps the master\'s hostname and DHCP network (nothing applied) and has no failed units', () => {
          expect(r(c.name).hostname).to.equal('master');
          expect(r(c.name).addresses.filter((a) => a.family === 'inet')).to.deep.equal([{ ifname: 'ens3', family: 'inet', address: '10.0.2.15/24' }]);
          expect(r(c.name).failedUnits).to.deep.equal([]);
        });
      });
    }

    it('the two clones differ from each other and from the master', () => {
      const [a, b] = CLONES.map((c) => r(c.name));
      expect(new Set([master.machineId, a!.machineId, b!.machineId]).size).to.equal(3);
      const fps = [...master.fingerprints, ...a!.sshFingerprints, ...b!.sshFingerprints];
      expect(new Set(fps).size).to.equal(fps.length);
    });
  });
});
