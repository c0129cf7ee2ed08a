/**
 * Windows clones, end to end on real NTFS images through libguestfs: the
 * hives and the image are made by the tests (regf generator, host mkntfs),
 * edits go through the real hivexsh, checks read the hives back with the
 * host's hivexget (not our own reader).
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { GuestfsBackend } from '../../src/backends/guestfs/backend.js';
import { MemoryGuest } from '../../src/backends/memory.js';
import { validateFleet } from '../../src/fleet/validate.js';
import { renderDiff, effectiveChanges } from '../../src/plan/diff.js';
import type { RegistryChange } from '../../src/plan/types.js';
import { computerNameProblem } from '../../src/windows/computer-name.js';
import { detectWindows } from '../../src/windows/detect.js';
import { applyRegistryChange, hivexshScript } from '../../src/windows/hive.js';
import { buildHive, decodeValue, HiveReader } from '../../src/windows/regf.js';
import { ghostprep } from '../helpers/cli.js';
import { tempDir } from '../helpers/rootfs.js';
import { MASTER_NAME, softwareHive, systemHive, windowsImages, type WindowsImages } from './image.js';
import { formatIdentity } from '../../src/cli/commands/inspect.js';
import { inspectGuest } from '../../src/fleet/inspect.js';
import { planSeal, selectSealOperations } from '../../src/fleet/seal.js';

const PROFILE = `profile: win
site: {domain: win.example.org, timezone: Europe/Berlin, gateway: 10.3.0.1, dns: [10.3.0.2]}
machineId: keep
windows:
  computerName: "{{upper machine.name}}"
  registeredOwner: "Ops & Co <ops>"
  registeredOrganization: Example
  network:
    interfaces:
      - {mac: "{{machine.mac}}", addresses: ["{{machine.ip}}"], gateway: "{{site.gateway}}", dns: "{{site.dns}}"}
  firstLogonCommands:
    - {run: "cmd /c echo first > C:\\\\first.txt", description: first logon}
  oobe: {hideEula: true, protectYourPC: 3}
`;
const MACHINES = ['win01', 'win02', 'win03'];
const INVENTORY = 'defaults: {profile: win}\nmachines:\n' + MACHINES.map((n, i) => `  - {name: ${n}, mac: "52:54:00:30:00:0${i + 1}", ip: 10.3.0.${i + 11}/24}\n`).join('');

function hivexget(file: string, key: string, value: string): string {
  return execFileSync('hivexget', [file, key, value], { encoding: 'utf8' }).trim();
}

describe('windows: regf hives, computer names, unattend (no appliance)', () => {
  const work = tempDir('ghostprep-win-unit-');

  it('writes hives that hivex reads (hivexget) and that our reader reads back', () => {
    const file = path.join(work, 'SYSTEM');
    writeFileSync(file, systemHive());
    expect(hivexget(file, '\\ControlSet001\\Control\\ComputerName\\ComputerName', 'ComputerName')).to.equal(MASTER_NAME);
    expect(hivexget(file, '\\Select', 'Current')).to.equal('1');
    const r = new HiveReader(systemHive());
    expect(r.children(r.root).map((c) => c.name)).to.deep.equal(['ControlSet001', 'MountedDevices', 'Select', 'Setup']);
    expect(decodeValue(r.value('controlset001\\services\\tcpip\\parameters', 'nv hostname')!)).to.deep.equal({ type: 'sz', value: 'win-master' });
    const sw = path.join(work, 'SOFTWARE');
    writeFileSync(sw, softwareHive('generalized'));
    expect(hivexget(sw, '\\Microsoft\\Windows NT\\CurrentVersion', 'ProductName')).to.equal('Windows 10 Pro');
  });

  it('refuses truncated and hostile hives instead of reading out of bounds', () => {
    const h = systemHive();
    expect(() => new HiveReader(h.subarray(0, 100))).to.throw(/not a registry hive/);
    const bad = Buffer.from(h);
    bad.writeUInt32LE(0x7ffffff0, 0x24); // root cell far outside the file
    expect(() => new HiveReader(bad)).to.throw(/out of bounds/);
  });

  it('edits a hive through hivexsh: new keys, replaced values, other values kept byte for byte', async () => {
    const guest = new MemoryGuest({ '/Windows/System32/config/SYSTEM': systemHive() }, 'mem', { readonly: false });
    const change: RegistryChange = {
      op: 'registry', source: 'test', path: '/Windows/System32/config/SYSTEM', root: 'HKEY_LOCAL_MACHINE\\SYSTEM',
      edits: [
        { key: 'ControlSet001\\Services\\Tcpip\\Parameters', name: 'Hostname', value: { type: 'sz', value: 'line\nbreak "quoted"' } },
        { key: 'ControlSet001\\Services\\New\\Deeper', name: 'Count', value: { type: 'dword', value: 42 } },
      ],
    };
    expect(hivexshScript(new HiveReader(systemHive()), change.edits)).to.include('add New').and.include('setval 3');
    const [e] = await effectiveChanges(guest, [change]);
    expect(renderDiff(e!)).to.include('-"Hostname"="win-master"').and.include('+"Hostname"="line\\nbreak \\"quoted\\""').and.include('+"Count"=dword:0000002a');
    await applyRegistryChange(guest, change);
    const file = path.join(work, 'edited');
    writeFileSync(file, (await guest.readFile('/Windows/System32/config/SYSTEM'))!);
    expect(hivexget(file, '\\ControlSet001\\Services\\New\\Deeper', 'Count')).to.equal('42');
    expect(hivexget(file, '\\ControlSet001\\Services\\Tcpip\\Parameters', 'NV Hostname')).to.equal('win-master');
    expect(hivexget(file, '\\ControlSet001\\Services\\Tcpip\\Parameters', 'Domain')).to.equal('');
    expect(await effectiveChanges(guest, [change])).to.deep.equal([]);
  });

  it('detects Windows from the registry: product, version, control set, generalized or not', async () => {
    for (const flavour of ['generalized', 'specialized'] as const) {
      const g = new MemoryGuest({ '/Windows/System32/config/SYSTEM': systemHive(), '/Windows/System32/config/SOFTWARE': softwareHive(flavour) }, 'mem');
      const w = await detectWindows(g);
      expect(w).to.include({ productName: 'Windows 10 Pro', version: '10.0', build: '19045', controlSet: 'ControlSet001', computerName: MASTER_NAME, architecture: 'amd64', generalized: flavour === 'generalized' });
    }
    expect(await detectWindows(new MemoryGuest({ '/etc/os-release': 'ID=debian\n' }, 'mem'))).to.equal(undefined);
  });

  it('seal refuses a Windows guest (sysprep generalizes Windows, not the Linux seal operations)', async () => {
    const g = new MemoryGuest({ '/Windows/System32/config/SYSTEM': systemHive(), '/Windows/System32/config/SOFTWARE': softwareHive('specialized') }, 'mem');
    await planSeal(g, selectSealOperations(undefined)).then(() => expect.fail('should refuse'), (e: Error) => expect(e.message).to.match(/generalized inside Windows \(sysprep \/generalize/));
  });

  it('checks computer names against Windows rules', () => {
    expect(computerNameProblem('WIN-01')).to.equal(undefined);
    expect(computerNameProblem('a-very-long-computer-name')).to.match(/25 characters long; NetBIOS allows at most 15/);
    expect(computerNameProblem('web_01')).to.match(/contains "_"/);
    expect(computerNameProblem('12345')).to.match(/only digits/);
    expect(computerNameProblem('-web')).to.match(/hyphen/);
  });

  it('validate: a too long computer name is a located error; windows keys are schema-checked', () => {
    const dir = tempDir('ghostprep-win-validate-');
    writeFileSync(path.join(dir, 'win.yaml'), 'profile: win\nwindows:\n  computerName: "{{machine.name}}-workstation"\n  unattend: sometimes\n');
    writeFileSync(path.join(dir, 'inv.yaml'), 'defaults: {profile: win}\nmachines:\n  - {name: office01}\n');
    const { diagnostics } = validateFleet([path.join(dir, 'win.yaml')], path.join(dir, 'inv.yaml'));
    const errors = diagnostics.filter((d) => d.severity === 'error');
    expect(errors.some((d) => d.line === 3 && /office01-workstation.*at most 15/.test(d.message)), JSON.stringify(errors)).to.equal(true);
    expect(errors.some((d) => d.line === 4 && /unattend/.test(d.path + d.message)), JSON.stringify(errors)).to.equal(true);
  });

  it('validate: two machines with one computer name is a located error', () => {
    const dir = tempDir('ghostprep-win-validate-');
    writeFileSync(path.join(dir, 'win.yaml'), 'profile: win\nwindows:\n  computerName: OFFICE\n');
    writeFileSync(path.join(dir, 'inv.yaml'), 'defaults: {profile: win}\nmachines:\n  - {name: office01}\n  - {name: office02}\n');
    const { diagnostics } = validateFleet([path.join(dir, 'win.yaml')], path.join(dir, 'inv.yaml'));
    const dup = diagnostics.filter((d) => d.severity === 'error' && /duplicate Windows computer name "OFFICE"/.test(d.message));
    expect(dup, JSON.stringify(diagnostics)).to.have.length(1);
    expect(dup[0]).to.include({ line: 3 });
  });

  it('builds hives from scratch with many keys (subkey lists sorted as Windows wants)', () => {
    const keys = Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`k${300 - i}`, { values: { v: { type: 'dword' as const, value: i } } }]));
    const file = path.join(work, 'many');
    writeFileSync(file, buildHive({ subkeys: keys }));
    expect(hivexget(file, '\\k7', 'v')).to.equal('293');
    const r = new HiveReader(readFileSync(file));
    const names = r.children(r.root).map((c) => c.name);
    expect(names).to.have.length(300);
    expect(names).to.deep.equal([...names].sort((a, b) => (a.toUpperCase() < b.toUpperCase() ? -1 : 1)));
  });
});

describe('windows: deploy, plan, apply, audit and inspect on NTFS images (guestfs)', function () {
  // Seven appliance launches in all: deploy, plan, capture, apply, audit, one read-back and one plan of the four clones
  // (--jobs 1 where several images are opened: the default, one appliance per core, launches two for nothing asserted here).
  this.timeout(1_200_000);
  const work = tempDir('ghostprep-win-e2e-');
  const out = path.join(work, 'clones');
  const prof = path.join(work, 'win.yaml');
  const inv = path.join(work, 'inv.yaml');
  const single = path.join(work, 'single.yaml');
  const solo = path.join(work, 'solo.qcow2');
  let images: WindowsImages;
  let applyStderr = '';

  before(async () => {
    images = await windowsImages();
    writeFileSync(prof, PROFILE);
    writeFileSync(inv, INVENTORY);
    writeFileSync(single, 'defaults: {profile: win}\nmachines:\n  - {name: solo, mac: "52:54:00:30:00:09", ip: 10.3.0.19/24}\n');
  });

  it("libguestfs's own inspection (inspect-os) sees the test images as Windows", () => {
    for (const dev of ['/dev/sda1', '/dev/sdb1']) {
      const get = (what: string) => new RegExp(`==${dev} ${what}==\\n([^\\n]*)`).exec(images.inspection)?.[1];
      expect(get('type'), images.inspection).to.equal('windows');
      expect(get('distro')).to.equal('windows');
      expect(get('product-name')).to.equal('Windows 10 Pro');
      expect(get('major-version')).to.equal('10');
      expect(get('windows-systemroot')).to.equal('/Windows');
      expect(get('hostname'), 'libguestfs reads Tcpip\\Parameters Hostname').to.equal('win-master');
      expect(get('arch')).to.equal('x86_64');
    }
  });

  it('deploy of 3 clones from a generalized master succeeds without the not-generalized warning', () => {
    const base = path.join(work, 'base-generalized.qcow2');
    copyFileSync(images.generalized, base);
    const r = ghostprep(['deploy', '-p', prof, '-i', inv, '--base', base, '--out', out, '--state', path.join(work, 'state'), '--jobs', '1']);
    expect(r.status, r.stderr + r.stdout).to.equal(0);
    expect(r.stderr).to.not.match(/not generalized/);
  });

  it('a non-generalized master: plan warns about the risk and shows the registry changes as a .reg diff', () => {
    const base = path.join(work, 'base-specialized.qcow2');
    copyFileSync(images.specialized, base);
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', base, solo]);
    const plan = ghostprep(['plan', '-p', prof, '-i', single, '--state', path.join(work, 'state'), '--target', solo]);
    expect(plan.status, plan.stderr).to.equal(0);
    expect(plan.stderr).to.match(/warning: solo: the master Windows installation is not generalized.*Microsoft does not support cloning it.*same machine SID/);
    expect(plan.stdout).to.include('+++ b/Windows/System32/config/SYSTEM');
    expect(plan.stdout).to.include('master NOT generalized');
    expect(plan.stdout).to.include('[HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet001\\Control\\ComputerName\\ComputerName]');
    expect(plan.stdout).to.include(`-"ComputerName"="${MASTER_NAME}"`).and.include('+"ComputerName"="SOLO"');
    expect(plan.stdout).to.include('+"ghostprep-01"="cmd /c echo first > C:\\\\first.txt"');
    expect(plan.stdout, 'auto: no unattend.xml for a specialized image').to.not.include('unattend.xml');
  });

  it('capture refuses the non-generalized master and names the risk', () => {
    const r = ghostprep(['capture', '--target', path.join(work, 'base-specialized.qcow2'), '--library', path.join(work, 'lib'), '--name', 'win']);
    expect(r.status).to.equal(1);
    expect(r.stderr).to.match(/is not sealed; still identifying:\n {2}Windows image state IMAGE_STATE_COMPLETE: the master Windows installation is not generalized/);
  });

  it('apply on the non-generalized clone warns too and succeeds (hive edits verified by reading back)', () => {
    const apply = ghostprep(['apply', '-p', prof, '-i', single, '--state', path.join(work, 'state'), '--target', solo]);
    expect(apply.status, apply.stderr).to.equal(0);
    applyStderr = apply.stderr;
    expect(applyStderr).to.match(/warning: solo: the master Windows installation is not generalized/);
  });

  it('audit lists the three clones with their computer names as unique', () => {
    const r = ghostprep(['audit', '--target', path.join(out, '*.qcow2'), '--json', '--jobs', '1']);
    expect(r.status, r.stderr).to.equal(0);
    const report = JSON.parse(r.stdout) as { unique: boolean; duplicates: unknown[]; identities: Array<{ target: string; identity: { windows: { computerName: string; generalized: boolean } } }> };
    expect(report.unique).to.equal(true);
    expect(report.duplicates).to.deep.equal([]);
    expect(report.identities.map((i) => i.identity.windows.computerName)).to.deep.equal(['WIN01', 'WIN02', 'WIN03']);
    expect(report.identities.every((i) => i.identity.windows.generalized)).to.equal(true);
  });

  it('reading the clones back: three computer names in the hives (hivexget) and in unattend.xml; RunOnce on the specialized one; inspect output', async () => {
    const seen: Record<string, { unattend: string | null; hive: Record<string, string>; runOnce: string; inspect: string }> = {};
    const host = path.join(work, 'hives');
    mkdirSync(host, { recursive: true });
    const targets = [...MACHINES.map((m) => ({ kind: 'image' as const, path: path.join(out, `${m}.qcow2`), machine: m })), { kind: 'image' as const, path: solo, machine: 'solo' }];
    await new GuestfsBackend().forEachGuest(targets, { readonly: true, jobs: 1 }, async (t, g) => {
      if (g instanceof Error) throw g;
      const sys = path.join(host, `${t.machine}-SYSTEM`);
      const sw = path.join(host, `${t.machine}-SOFTWARE`);
      await fs.writeFile(sys, (await g.readFile('/Windows/System32/config/SYSTEM', { maxBytes: 1 << 26 }))!);
      await fs.writeFile(sw, (await g.readFile('/Windows/System32/config/SOFTWARE', { maxBytes: 1 << 26 }))!);
      const cs = '\\ControlSet001';
      seen[t.machine!] = {
        unattend: (await g.readFile('/Windows/Panther/unattend.xml'))?.toString('utf8') ?? null,
        hive: {
          computerName: hivexget(sys, `${cs}\\Control\\ComputerName\\ComputerName`, 'ComputerName'),
          active: hivexget(sys, `${cs}\\Control\\ComputerName\\ActiveComputerName`, 'ComputerName'),
          hostname: hivexget(sys, `${cs}\\Services\\Tcpip\\Parameters`, 'Hostname'),
          nvHostname: hivexget(sys, `${cs}\\Services\\Tcpip\\Parameters`, 'NV Hostname'),
        },
        runOnce: execFileSync('hivexregedit', ['--export', sw, '\\Microsoft\\Windows\\CurrentVersion\\RunOnce'], { encoding: 'utf8' }),
        inspect: formatIdentity(t.path, await inspectGuest(g)),
      };
    });
    for (const [i, m] of MACHINES.entries()) {
      const s = seen[m]!;
      const name = m.toUpperCase();
      expect(s.hive).to.deep.equal({ computerName: name, active: name, hostname: name, nvHostname: name });
      expect(s.unattend).to.include(`<ComputerName>${name}</ComputerName>`);
      expect(s.unattend).to.include('<TimeZone>W. Europe Standard Time</TimeZone>');
      expect(s.unattend).to.include('<RegisteredOwner>Ops &amp; Co &lt;ops&gt;</RegisteredOwner>');
      expect(s.unattend).to.include(`<Identifier>52-54-00-30-00-0${i + 1}</Identifier>`);
      expect(s.unattend).to.include(`>10.3.0.${i + 11}/24</IpAddress>`);
      expect(s.unattend).to.include('<NextHopAddress>10.3.0.1</NextHopAddress>').and.include('>10.3.0.2</IpAddress>');
      expect(s.unattend).to.include('<CommandLine>cmd /c echo first &gt; C:\\first.txt</CommandLine>');
      expect(s.unattend).to.match(/<settings pass="oobeSystem">[\s\S]*<HideEULAPage>true<\/HideEULAPage>/);
      expect(s.unattend).to.include('processorArchitecture="amd64"');
      expect(s.runOnce, 'generalized: first-logon commands go to unattend, not RunOnce').to.not.include('ghostprep');
      expect(s.inspect).to.match(new RegExp(`computer:\\s+${name} \\(DNS host name ${name}\\)\\n\\s+generalized: yes`));
    }
    expect(new Set(MACHINES.map((m) => seen[m]!.hive.computerName)).size).to.equal(3);
    expect(new Set(MACHINES.map((m) => /<ComputerName>(.*)<\/ComputerName>/.exec(seen[m]!.unattend!)![1])).size).to.equal(3);
    const s = seen.solo!;
    expect(s.hive).to.deep.equal({ computerName: 'SOLO', active: 'SOLO', hostname: 'SOLO', nvHostname: 'SOLO' });
    expect(s.unattend).to.equal(null);
    expect(s.runOnce).to.include('"ghostprep-01"=');
    expect(s.inspect).to.match(/distro:\s+Windows 10 Pro[^\n]*family windows\)\n\s+system root: \/Windows\n\s+computer:\s+SOLO \(DNS host name SOLO\)\n\s+generalized: NO/);
  });

  it('plan after deploy and apply shows no changes on all four clones (registry values compared, not hive bytes)', function () {
    if (!applyStderr) this.skip();
    const all = path.join(work, 'all.yaml');
    writeFileSync(all, INVENTORY.replace(/ip: (10\.3\.0\.\d+\/24)\}/g, (_m, ip: string) => `ip: ${ip}, target: ${path.join(out, `win0${Number(ip.split('.')[3]!.split('/')[0]) - 10}.qcow2`)}}`)
      + `  - {name: solo, mac: "52:54:00:30:00:09", ip: 10.3.0.19/24, target: ${solo}}\n`);
    const plan = ghostprep(['plan', '-p', prof, '-i', all, '--state', path.join(work, 'state'), '--jobs', '1', '--detailed-exitcode']);
    expect(plan.status, plan.stdout + plan.stderr).to.equal(0);
  });
});
