/**
 * Proves the boot harness itself: the master image boots under QEMU (TCG) and
 * reports the master's identity — hostname `master`, the master's
 * machine-id and SSH host keys, and the DHCP address of QEMU's user network
 * (10.0.2.15) on ens3, from the master's own /etc/network/interfaces.
 */
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { execa } from 'execa';
import { bootAndReport, bootPrerequisites, buildDebianBase, MASTER_HOSTNAME, SKIP_BOOT, SKIP_BOOT_REASON, type BootReport, type DebianBase } from '../helpers/boot.js';

describe('boot harness: the Debian 12 master under QEMU', function () {
  this.timeout(30 * 60_000);
  let base: DebianBase;
  let report: BootReport;

  before(async function () {
    if (SKIP_BOOT) { console.log(`      ${SKIP_BOOT_REASON}`); this.skip(); }
    const missing = await bootPrerequisites();
    if (missing) throw new Error(`boot tests cannot run: ${missing} (set GHOSTPREP_SKIP_BOOT=1 to skip them)`);
    base = await buildDebianBase();
    report = await bootAndReport(base.image, { kernel: base.kernel, initrd: base.initrd });
  });

  it('reports the master hostname', () => {
    expect(report.hostname).to.equal(MASTER_HOSTNAME);
  });

  it("reports the master's machine-id", () => {
    const id = readFileSync(path.join(base.rootfs, 'etc/machine-id'), 'utf8').trim();
    expect(id).to.match(/^[0-9a-f]{32}$/);
    expect(report.machineId).to.equal(id);
    expect(report.dbusMachineId).to.equal(id);
    expect(report.dbusReportedMachineId).to.equal(id);
  });

  it("reports the master's SSH host keys, and sshd serves them", async () => {
    const dir = path.join(base.rootfs, 'etc/ssh');
    const expected: string[] = [];
    for (const f of readdirSync(dir).filter((n) => /^ssh_host_.*_key\.pub$/.test(n))) {
      const { stdout } = await execa('ssh-keygen', ['-lf', path.join(dir, f)]);
      expected.push(/SHA256:\S+/.exec(stdout)![0]);
    }
    expect(expected.length).to.be.at.least(2);
    expect(report.sshFingerprints).to.deep.equal(expected.sort());
    expect(report.sshService).to.equal('active');
    expect(report.sshdFingerprints).to.deep.equal(expected.sort());
  });

  it('gets the DHCP address of QEMU user networking on ens3', () => {
    expect(report.links.map((l) => l.ifname)).to.deep.equal(['ens3']);
    // the master's `allow-hotplug ens3` stanza, through ifupdown's udev hook
    expect(report.ifupUnits).to.include('ifup@ens3.service active');
    expect(report.addresses.filter((a) => a.family === 'inet')).to.deep.equal([{ ifname: 'ens3', family: 'inet', address: '10.0.2.15/24' }]);
    // restrict=on: QEMU's DHCP server offers no router (and no DNS), so no IPv4 default route
    expect(report.routes.filter((r) => !r.includes(':'))).to.deep.equal([]);
  });

  it('has no failed units', () => {
    expect(report.failedUnits).to.deep.equal([]);
  });
});
