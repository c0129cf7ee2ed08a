/**
 * Windows clones, end to end on real NTFS images through libguestfs: the
 * hives and the image are made by the tests (regf generator, host mkntfs),
 * edits go through the real hivexsh, checks read the hives back with the
 * host's hivexget (not our own reader). The ghostprep runs are the scenario
 * of fleet.ts, shared with unattended.test.ts; the clones are copied out
 * host-side with ntfs-3g's tools (ntfs-read.ts), not through libguestfs.
 */
import { expect } from 'chai';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { MemoryGuest } from '../../src/backends/memory.js';
import { validateFleet } from '../../src/fleet/validate-fleet.js';
import { renderDiff, effectiveChanges } from '../../src/plan/diff.js';
import type { RegistryChange } from '../../src/core/file-change.js';
import { computerNameProblem } from '../../src/windows/computer-name.js';
import { detectWindows } from '../../src/windows/detect.js';
import { applyRegistryChange, hivexshScript } from '../../src/windows/hive.js';
import { decodeValue, HiveReader } from '../../src/windows/regf.js';
import { buildHive } from '../helpers/hive-writer.js';
import { ghostprep } from '../helpers/cli.js';
import { tempDir } from '../helpers/rootfs.js';
import { MASTER_NAME, softwareHive, systemHive, type WindowsImages } from './image.js';
import { BONDED, MACHINES, planSection, SPECIALIZED, windowsFleet, type WindowsFleet } from './fleet.js';
import { planSeal, selectSealOperations } from '../../src/fleet/seal.js';
import { renderMachine } from '../../src/fleet/prepare.js';
import { type RenderedMachine } from '../../src/core/machine.js';
import { windowsUnattendOperation } from '../../src/operations/customize/windows-unattend.js';
import { windowsComputerNameOperation } from '../../src/operations/customize/windows-computer-name.js';
import { planNetwork } from '../../src/network/index.js';
import { windowsChecks } from '../../src/windows/check.js';
import { judgeGeneralized, windowsDistro } from '../../src/windows/detect.js';
import { windowsTimeZone, windowsTimeZoneProblem } from '../../src/windows/settings.js';
import { renderUnattend } from '../../src/windows/unattend.js';
import { WINDOWS_ZONE_IDS } from '../../src/windows/zones.js';

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

/** Every element of an XML document, parsed by python3's xml.dom.minidom (a real parser: malformed XML throws). */
interface XmlElement { tag: string; text: string | null; attrs: Record<string, string>; children: string[]; path: string }
const PARSE_XML = `
import sys, json
from xml.dom import minidom
doc = minidom.parseString(sys.stdin.buffer.read())
out = []
def walk(node, path):
    for c in node.childNodes:
        if c.nodeType != c.ELEMENT_NODE:
            continue
        kids = [k for k in c.childNodes if k.nodeType == k.ELEMENT_NODE]
        text = None if kids else ''.join(t.data for t in c.childNodes if t.nodeType in (t.TEXT_NODE, t.CDATA_SECTION_NODE))
        p = path + '/' + c.localName
        out.append({'tag': c.localName, 'text': text, 'attrs': dict(c.attributes.items()), 'children': [k.localName for k in kids], 'path': p})
        walk(c, p)
walk(doc, '')
print(json.dumps(out))
`;
function parseXml(xml: string): XmlElement[] {
  return JSON.parse(execFileSync('python3', ['-c', PARSE_XML], { input: xml, encoding: 'utf8' })) as XmlElement[];
}
const texts = (els: XmlElement[], pathEnd: string) => els.filter((e) => e.path.endsWith(pathEnd)).map((e) => e.text);

/** Profile and inventory (YAML) -> the rendered machines and validate's diagnostics. */
function renderFleet(profileYaml: string, inventoryYaml: string, extra: Record<string, string> = {}): { machines: RenderedMachine[]; diagnostics: ReturnType<typeof validateFleet>['diagnostics']; dir: string } {
  const dir = tempDir('ghostprep-win-render-');
  writeFileSync(path.join(dir, 'win.yaml'), profileYaml);
  writeFileSync(path.join(dir, 'inv.yaml'), inventoryYaml);
  for (const [rel, text] of Object.entries(extra)) {
    mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    writeFileSync(path.join(dir, rel), text);
  }
  const v = validateFleet([path.join(dir, 'win.yaml')], path.join(dir, 'inv.yaml'));
  return { machines: v.machines.map((m) => renderMachine(m)), diagnostics: v.diagnostics, dir };
}

function windowsGuest(flavour: 'generalized' | 'specialized', files: Record<string, string | Buffer> = {}): MemoryGuest {
  return new MemoryGuest({ '/Windows/System32/config/SYSTEM': systemHive(flavour), '/Windows/System32/config/SOFTWARE': softwareHive(flavour), '/Windows/Panther': { dir: true }, ...files }, 'mem');
}

const IDENTITY = { machineId: undefined, pending: false, hostKeys: [] };

async function planOp(op: typeof windowsUnattendOperation, guest: MemoryGuest, machine: RenderedMachine): Promise<{ changes: Awaited<ReturnType<typeof op.plan>>; warnings: string[] }> {
  const info = await detectWindows(guest);
  const warnings: string[] = [];
  const changes = await op.plan({ guest, distro: windowsDistro(info!), machine, profile: machine.profile, identity: IDENTITY, warn: (m) => warnings.push(m) });
  return { changes, warnings };
}

describe('windows: unattend rendering, network, time zones, setup state (no appliance)', () => {
  it('unattend.xml stays well-formed XML for awkward values (a--b, & < > quotes); the parsed values equal the inputs', () => {
    const owner = `O'Brien & "Sons" <ops>`;
    const org = 'a--b & <c> > "d" \'e\'';
    const run = `cmd /c echo "a" > C:\\x.txt & echo 'b' < nul`;
    const description = 'x--y <&> "q" -- end';
    const profile = `profile: win\nwindows: ${JSON.stringify({ registeredOwner: owner, registeredOrganization: org, firstLogonCommands: [{ run, description }, { run: 'a--b' }] })}\n`;
    const { machines, diagnostics } = renderFleet(profile, 'defaults: {profile: win}\nmachines:\n  - {name: a--b}\n');
    expect(diagnostics.filter((d) => d.severity === 'error'), JSON.stringify(diagnostics)).to.deep.equal([]);
    const xml = renderUnattend(machines[0]!, 'amd64');
    const els = parseXml(xml);
    expect(texts(els, '/ComputerName')).to.deep.equal(['a--b']);
    expect(texts(els, '/RegisteredOwner')).to.deep.equal([owner]);
    expect(texts(els, '/RegisteredOrganization')).to.deep.equal([org]);
    expect(texts(els, '/SynchronousCommand/CommandLine')).to.deep.equal([run, 'a--b']);
    expect(texts(els, '/SynchronousCommand/Description')).to.deep.equal([description, 'ghostprep 2']);
    expect(texts(els, '/SynchronousCommand/Order')).to.deep.equal(['1', '2']);
  });

  it('windows.unattend: auto writes unattend.xml only on a generalized image, always on any, never on none', async () => {
    const { machines } = renderFleet('profile: win\nwindows: {registeredOwner: ops}\n', 'defaults: {profile: win}\nmachines:\n  - {name: office01}\n');
    const r = machines[0]!;
    const withMode = (unattend: string): RenderedMachine => ({ ...r, profile: { ...r.profile, windows: { ...(r.profile as unknown as { windows: object }).windows, unattend } } as RenderedMachine['profile'] });
    const paths = async (flavour: 'generalized' | 'specialized', mode: string) => (await planOp(windowsUnattendOperation, windowsGuest(flavour), withMode(mode))).changes.map((c) => c.path);
    expect(await paths('generalized', 'auto')).to.deep.equal(['/Windows/Panther/unattend.xml']);
    expect(await paths('specialized', 'auto')).to.deep.equal([]);
    expect(await paths('specialized', 'always')).to.deep.equal(['/Windows/Panther/unattend.xml']);
    expect(await paths('generalized', 'never')).to.deep.equal([]);
    // the existing directory's spelling is kept (NTFS is case-insensitive, ntfs-3g is not)
    const odd = new MemoryGuest({ '/Windows/System32/config/SYSTEM': systemHive('generalized'), '/Windows/System32/config/SOFTWARE': softwareHive('generalized'), '/Windows/PANTHER': { dir: true } }, 'mem');
    expect((await planOp(windowsUnattendOperation, odd, r)).changes.map((c) => c.path)).to.deep.equal(['/Windows/PANTHER/unattend.xml']);
  });

  it('windows.template: an own template next to the profile, strict about unknown variables', () => {
    const { machines } = renderFleet('profile: win\nwindows: {template: mine.xml.hbs, registeredOwner: "A & B"}\n', 'defaults: {profile: win}\nmachines:\n  - {name: office01}\n',
      { 'templates/mine.xml.hbs': '<mine name="{{computerName}}" arch="{{arch}}">{{registeredOwner}} {{machine.name}}</mine>\n', 'templates/bad.xml.hbs': '<x>{{nosuchthing}}</x>\n' });
    expect(renderUnattend(machines[0]!, 'arm64')).to.equal('<mine name="office01" arch="arm64">A &amp; B office01</mine>\n');
    const r = machines[0]!;
    const bad = { ...r, profile: { ...r.profile, windows: { template: 'bad.xml.hbs' } } as RenderedMachine['profile'] };
    // the template is looked up next to the profile file that names it (windows/template's origin), which `bad` keeps
    expect(() => renderUnattend(bad, 'amd64')).to.throw(/bad\.xml\.hbs.*nosuchthing/);
  });

  it('oobeSystem: OOBE and International-Core settings as the profile asks, none when it does not', () => {
    const profile = 'profile: win\nwindows:\n  oobe: {hideEula: true, hideOEMRegistrationScreen: true, protectYourPC: 2, networkLocation: Work}\n  locale: {input: "0407:00000407", system: de-DE, ui: en-US, user: de-DE}\n';
    const { machines } = renderFleet(profile, 'defaults: {profile: win}\nmachines:\n  - {name: office01}\n');
    const els = parseXml(renderUnattend(machines[0]!, 'amd64'));
    const oobe = els.filter((e) => e.path.startsWith('/unattend/settings/component/OOBE/'));
    expect(Object.fromEntries(oobe.map((e) => [e.tag, e.text]))).to.deep.equal({ HideEULAPage: 'true', HideOEMRegistrationScreen: 'true', ProtectYourPC: '2', NetworkLocation: 'Work' });
    const intl = els.find((e) => e.attrs.name === 'Microsoft-Windows-International-Core')!;
    expect(intl.children).to.deep.equal(['InputLocale', 'SystemLocale', 'UILanguage', 'UserLocale']);
    expect(texts(els, '/InputLocale')).to.deep.equal(['0407:00000407']);
    const settings = els.filter((e) => e.tag === 'settings').map((e) => e.attrs.pass);
    expect(settings).to.deep.equal(['specialize', 'oobeSystem']);
    const plain = parseXml(renderUnattend(renderFleet('profile: win\nwindows: {}\n', 'defaults: {profile: win}\nmachines:\n  - {name: office01}\n').machines[0]!, 'amd64'));
    expect(plain.filter((e) => ['OOBE', 'InputLocale', 'FirstLogonCommands'].includes(e.tag))).to.deep.equal([]);
  });

  it('plan on a generalized rootfs target shows unattend.xml as a new file and the hive edits as a .reg diff', () => {
    const dir = tempDir('ghostprep-win-plan-');
    const root = path.join(dir, 'root');
    mkdirSync(path.join(root, 'Windows/System32/config'), { recursive: true });
    mkdirSync(path.join(root, 'Windows/Panther'), { recursive: true });
    writeFileSync(path.join(root, 'Windows/System32/config/SYSTEM'), systemHive('generalized'));
    writeFileSync(path.join(root, 'Windows/System32/config/SOFTWARE'), softwareHive('generalized'));
    writeFileSync(path.join(dir, 'win.yaml'), 'profile: win\nmachineId: keep\nsite: {timezone: Europe/Berlin}\nwindows: {computerName: "{{upper machine.name}}"}\n');
    writeFileSync(path.join(dir, 'inv.yaml'), 'defaults: {profile: win}\nmachines:\n  - {name: office01}\n');
    const plan = ghostprep(['plan', '-p', path.join(dir, 'win.yaml'), '-i', path.join(dir, 'inv.yaml'), '--state', path.join(dir, 'state'), '--target', `rootfs:${root}`]);
    expect(plan.status, plan.stderr + plan.stdout).to.equal(0);
    expect(plan.stdout).to.include('+++ b/Windows/Panther/unattend.xml');
    expect(plan.stdout).to.include('+      <ComputerName>OFFICE01</ComputerName>').and.include('+      <TimeZone>W. Europe Standard Time</TimeZone>');
    expect(plan.stdout).to.include('+"ComputerName"="OFFICE01"');
    expect(plan.stderr).to.not.match(/not generalized/);
  });

  it('network: from the profile\'s network model: MAC identifiers, IPv4 and IPv6 addresses, default routes 0.0.0.0/0 and ::/0, DNS servers and search domains, in the documented element order', () => {
    const profile = `profile: win
site: {domain: corp.example}
network:
  version: 2
  ethernets:
    lan:
      match: {macaddress: "{{machine.mac}}"}
      addresses: ["{{machine.ip}}", "2001:db8::11/64"]
      routes:
        - {to: default, via: 10.3.0.1}
        - {to: default, via: "2001:db8::1"}
        - {to: 192.168.0.0/16, via: 10.3.0.254, metric: 50}
        - {to: 172.16.0.0/12, via: 10.3.0.253, metric: 0}
      nameservers: {addresses: [10.3.0.2, "2001:db8::53"], search: [corp.example, example.org]}
windows: {}
`;
    const { machines, diagnostics } = renderFleet(profile, 'defaults: {profile: win}\nmachines:\n  - {name: office01, mac: "52:54:00:aa:bb:01", ip: 10.3.0.11/24}\n');
    expect(diagnostics.filter((d) => d.severity === 'error'), JSON.stringify(diagnostics)).to.deep.equal([]);
    const els = parseXml(renderUnattend(machines[0]!, 'amd64'));
    const tcpip = els.filter((e) => e.path.startsWith('/unattend/settings/component/Interfaces/Interface'));
    const iface = tcpip.find((e) => e.tag === 'Interface' && e.children.includes('Ipv4Settings'))!;
    expect(iface.children, 'Microsoft: Ipv4Settings, Ipv6Settings, Identifier, UnicastIpAddresses, then Routes').to.deep.equal(['Ipv4Settings', 'Ipv6Settings', 'Identifier', 'UnicastIpAddresses', 'Routes']);
    expect(texts(els, '/Ipv4Settings/DhcpEnabled')).to.deep.equal(['false']);
    expect(texts(els, '/Ipv6Settings/DhcpEnabled')).to.deep.equal(['false']);
    expect(texts(els, '/Interface/Identifier')).to.deep.equal(['52-54-00-AA-BB-01', '52-54-00-AA-BB-01']);
    expect(els.filter((e) => e.path.endsWith('/UnicastIpAddresses/IpAddress')).map((e) => [e.attrs['wcm:keyValue'], e.text])).to.deep.equal([['1', '10.3.0.11/24'], ['2', '2001:db8::11/64']]);
    const routes = els.filter((e) => e.tag === 'Route');
    expect(routes.map((r) => r.children)).to.deep.equal([['Identifier', 'NextHopAddress', 'Prefix'], ['Identifier', 'NextHopAddress', 'Prefix'], ['Identifier', 'Metric', 'NextHopAddress', 'Prefix'], ['Identifier', 'Metric', 'NextHopAddress', 'Prefix']]);
    expect(texts(els, '/Route/Prefix')).to.deep.equal(['0.0.0.0/0', '::/0', '192.168.0.0/16', '172.16.0.0/12']);
    expect(texts(els, '/Route/NextHopAddress')).to.deep.equal(['10.3.0.1', '2001:db8::1', '10.3.0.254', '10.3.0.253']);
    expect(texts(els, '/Route/Identifier')).to.deep.equal(['1', '2', '3', '4']);
    expect(texts(els, '/Route/Metric'), 'metric 0 is a metric').to.deep.equal(['50', '0']);
    expect(texts(els, '/DNSServerSearchOrder/IpAddress')).to.deep.equal(['10.3.0.2', '2001:db8::53']);
    expect(texts(els, '/DNSSuffixSearchOrder/DomainName')).to.deep.equal(['corp.example', 'example.org']);
    expect(texts(els, '/component/DNSDomain')).to.deep.equal(['corp.example']);
  });

  it('network: windows.network overrides network: and puts IPv6 where IPv6 belongs (Ipv6Settings, ::/0)', () => {
    const profile = `profile: win
network: {version: 2, ethernets: {lan: {match: {macaddress: "52:54:00:00:00:99"}, dhcp4: true}}}
windows:
  network:
    interfaces:
      - {mac: "52:54:00:aa:bb:02", addresses: ["2001:db8::12/64"], gateway: "2001:db8::1", dns: ["2001:db8::53"]}
      - {mac: "52-54-00-aa-bb-03"}
`;
    const { machines } = renderFleet(profile, 'defaults: {profile: win}\nmachines:\n  - {name: office01}\n');
    const els = parseXml(renderUnattend(machines[0]!, 'amd64'));
    expect(texts(els, '/Interface/Identifier')).to.deep.equal(['52-54-00-AA-BB-02', '52-54-00-AA-BB-03', '52-54-00-AA-BB-02']);
    expect(texts(els, '/Ipv4Settings/DhcpEnabled'), 'no IPv4 address: IPv4 by DHCP; the second adapter all DHCP').to.deep.equal(['true', 'true']);
    expect(texts(els, '/Ipv6Settings/DhcpEnabled')).to.deep.equal(['false']);
    expect(texts(els, '/Route/Prefix')).to.deep.equal(['::/0']);
    expect(texts(els, '/Route/NextHopAddress')).to.deep.equal(['2001:db8::1']);
    expect(els.some((e) => e.text === '0.0.0.0/0')).to.equal(false);
  });

  it('network: what unattend.xml cannot say is refused by name at plan time and warned about by validate; Linux renderers skip Windows guests', async () => {
    const inv = 'defaults: {profile: win}\nmachines:\n  - {name: office01}\n';
    const bonded = renderFleet('profile: win\nnetwork: {version: 2, ethernets: {e1: {match: {macaddress: "52:54:00:00:00:01"}}}, bonds: {bond0: {interfaces: [e1], dhcp4: true}}}\nwindows: {}\n', inv);
    expect(() => renderUnattend(bonded.machines[0]!, 'amd64')).to.throw(/bonds\/bond0: Windows unattend.xml has no settings for a bond/);
    const noMac = renderFleet('profile: win\nnetwork: {version: 2, ethernets: {eth0: {dhcp4: true}}}\nwindows: {}\n', inv);
    expect(() => renderUnattend(noMac.machines[0]!, 'amd64')).to.throw(/ethernets\/eth0: Windows identifies adapters by MAC address.*add match: \{macaddress/);
    const warned = windowsChecks(noMac.machines[0]!);
    expect(warned.map((d) => [d.severity, d.line])).to.deep.equal([['warning', 2]]);
    expect(warned[0]!.message).to.match(/identifies adapters by MAC/);
    const plan = await planNetwork({ config: { version: 2, ethernets: { eth0: { dhcp4: true } } }, distro: windowsDistro((await detectWindows(windowsGuest('generalized')))!), reader: windowsGuest('generalized') });
    expect(plan.changes).to.deep.equal([]);
  });

  it('time zones: CLDR windowsZones maps IANA names (and their new spellings) to Windows IDs; an unmapped zone is a warning, a wrong windows.timezone a located error', async () => {
    expect(WINDOWS_ZONE_IDS.length).to.be.greaterThan(130);
    expect(windowsTimeZone('Europe/Berlin')).to.equal('W. Europe Standard Time');
    expect(windowsTimeZone('Europe/Kyiv'), 'CLDR says Europe/Kiev').to.equal('FLE Standard Time');
    expect(windowsTimeZone('Asia/Kolkata'), 'CLDR says Asia/Calcutta').to.equal('India Standard Time');
    expect(windowsTimeZone('America/Argentina/Salta')).to.equal('Argentina Standard Time');
    expect(windowsTimeZone('UTC')).to.equal('UTC');
    expect(windowsTimeZone('Antarctica/Troll'), 'a real zone CLDR maps to no Windows zone').to.equal(undefined);
    expect(windowsTimeZoneProblem('W. Europe Standard Time')).to.equal(undefined);
    expect(windowsTimeZoneProblem('Not A Real Zone')).to.match(/"Not A Real Zone" is not a Windows time zone ID \(CLDR 48/);
    expect(windowsTimeZoneProblem('Pacific Standard Tme')).to.match(/did you mean "Pacific Standard Time"\?/);
    expect(windowsTimeZoneProblem('Europe/Berlin')).to.match(/"Europe\/Berlin" is an IANA time zone; windows.timezone takes the Windows ID: "W. Europe Standard Time"/);

    const inv = 'defaults: {profile: win}\nmachines:\n  - {name: office01}\n';
    const wrong = renderFleet('profile: win\nwindows:\n  timezone: Europe/Berlin\n', inv);
    expect(windowsChecks(wrong.machines[0]!).map((d) => [d.severity, d.line, d.path])).to.deep.equal([['error', 3, '/windows/timezone']]);
    const invalid = renderFleet('profile: win\nwindows:\n  timezone: Not A Real Zone\n', inv);
    expect(windowsChecks(invalid.machines[0]!).map((d) => [d.severity, d.line])).to.deep.equal([['error', 3]]);
    const unmapped = renderFleet('profile: win\ntimezone: Antarctica/Troll\nwindows: {}\n', inv);
    const diags = windowsChecks(unmapped.machines[0]!);
    expect(diags.map((d) => [d.severity, d.line])).to.deep.equal([['warning', 2]]);
    expect(diags[0]!.message).to.match(/"Antarctica\/Troll" has no Windows equivalent/);
    const { changes, warnings } = await planOp(windowsUnattendOperation, windowsGuest('generalized'), unmapped.machines[0]!);
    expect(warnings.join('\n')).to.match(/"Antarctica\/Troll" has no Windows equivalent.*set windows.timezone/);
    expect((changes[0] as { content: Buffer }).content.toString()).to.not.include('<TimeZone>');
    const mapped = renderFleet('profile: win\ntimezone: Asia/Kolkata\nwindows: {}\n', inv);
    expect(windowsChecks(mapped.machines[0]!)).to.deep.equal([]);
    expect(renderUnattend(mapped.machines[0]!, 'amd64')).to.include('<TimeZone>India Standard Time</TimeZone>');
  });

  it('windows.dnsDomain must be a DNS name: a located error from validate', () => {
    const bad = renderFleet('profile: win\nwindows:\n  dnsDomain: "bad domain & <x>"\n', 'defaults: {profile: win}\nmachines:\n  - {name: office01}\n');
    const errors = bad.diagnostics.filter((d) => d.severity === 'error');
    expect(errors.map((d) => [d.line, d.path]), JSON.stringify(errors)).to.deep.equal([[3, '/windows/dnsDomain']]);
    const templated = renderFleet('profile: win\nsite: {domain: "bad_dom ain"}\nwindows:\n  dnsDomain: "{{site.domain}}"\n', 'defaults: {profile: win}\nmachines:\n  - {name: office01}\n');
    expect(templated.diagnostics.filter((d) => d.severity === 'error' && d.path === '/windows/dnsDomain').map((d) => d.message).join()).to.match(/after templates: "bad_dom ain"/);
    const good = renderFleet('profile: win\nsite: {domain: corp.example.org}\nwindows:\n  dnsDomain: "{{site.domain}}"\n', 'defaults: {profile: win}\nmachines:\n  - {name: office01}\n');
    expect(good.diagnostics.filter((d) => d.severity === 'error')).to.deep.equal([]);
  });

  it('generalized from each setup record: SOFTWARE ImageState, State.ini, SYSTEM SysprepStatus GeneralizationState; disagreements are warnings', async () => {
    const guest = (software: Buffer, system: Buffer, files: Record<string, string> = {}) => new MemoryGuest({ '/Windows/System32/config/SYSTEM': system, '/Windows/System32/config/SOFTWARE': software, ...files }, 'mem');
    const detect = async (g: MemoryGuest) => { const w = (await detectWindows(g))!; return { generalized: w.generalized, from: w.generalizedFrom, warnings: w.stateWarnings.length }; };
    // ImageState in SOFTWARE, SYSTEM records absent
    expect(await detect(guest(softwareHive('generalized'), systemHive('generalized', { generalizationState: null, setupInProgress: null })))).to.deep.equal({ generalized: true, from: 'ImageState', warnings: 0 });
    // State.ini only
    const ini = (state: string) => ({ '/Windows/Setup/State/State.ini': `[State]\r\nImageState=${state}\r\n` });
    expect(await detect(guest(softwareHive('generalized', null), systemHive('generalized', { generalizationState: null }), ini('IMAGE_STATE_GENERALIZE_RESEAL_TO_AUDIT')))).to.deep.equal({ generalized: true, from: 'State.ini', warnings: 0 });
    expect(await detect(guest(softwareHive('specialized', null), systemHive('specialized', { generalizationState: null }), ini('IMAGE_STATE_COMPLETE')))).to.deep.equal({ generalized: false, from: 'State.ini', warnings: 0 });
    // GeneralizationState only: 4 generalized, 7 specialized, anything else says nothing
    expect(await detect(guest(softwareHive('generalized', null), systemHive('generalized')))).to.deep.equal({ generalized: true, from: 'GeneralizationState', warnings: 0 });
    expect(await detect(guest(softwareHive('specialized', null), systemHive('specialized')))).to.deep.equal({ generalized: false, from: 'GeneralizationState', warnings: 0 });
    expect(await detect(guest(softwareHive('specialized', null), systemHive('specialized', { generalizationState: 5 })))).to.deep.equal({ generalized: false, from: null, warnings: 0 });
    // IMAGE_STATE_UNDEPLOYABLE says neither: GeneralizationState decides
    expect(await detect(guest(softwareHive('generalized', 'IMAGE_STATE_UNDEPLOYABLE'), systemHive('generalized')))).to.deep.equal({ generalized: true, from: 'GeneralizationState', warnings: 0 });
    // disagreement: ImageState wins, a warning names both
    const both = (await detectWindows(guest(softwareHive('generalized'), systemHive('generalized', { generalizationState: 7 }))))!;
    expect(both.generalized).to.equal(true);
    expect(both.stateWarnings).to.have.length(1);
    expect(both.stateWarnings[0]).to.match(/disagree: SOFTWARE.*ImageState is IMAGE_STATE_GENERALIZE_RESEAL_TO_OOBE \(generalized\) but SYSTEM\\Setup\\Status\\SysprepStatus GeneralizationState is 7 \(specialized\); going by ImageState/);
    // generalized, but Windows Setup would not run at boot
    const noSetup = (await detectWindows(guest(softwareHive('generalized'), systemHive('generalized', { setupInProgress: 0 }))))!;
    expect(noSetup.stateWarnings.join()).to.match(/SystemSetupInProgress is 0: Windows would boot normally and skip the specialize pass/);
    expect(judgeGeneralized({ imageState: null, imageStateFrom: null, generalizationState: null, setupInProgress: null })).to.deep.equal({ generalized: false, from: null, warnings: [] });
    // the computer-name operation passes them on as warnings
    const { machines } = renderFleet('profile: win\nwindows: {}\n', 'defaults: {profile: win}\nmachines:\n  - {name: office01}\n');
    const { warnings } = await planOp(windowsComputerNameOperation, guest(softwareHive('generalized'), systemHive('generalized', { generalizationState: 7 })), machines[0]!);
    expect(warnings.join('\n')).to.match(/setup records disagree/);
    expect(warnings.join('\n')).to.not.match(/not generalized/);
    // and the test image's records agree with each other
    for (const f of ['generalized', 'specialized'] as const) expect((await detectWindows(windowsGuest(f)))!.stateWarnings).to.deep.equal([]);
  });

  it('guestfish cannot write a REG_SZ value: its strings refuse NUL bytes, which every UTF-16LE string holds (why hives are edited with hivexsh)', () => {
    // "W\x00I\x00N\x00\x00\x00" is WIN as REG_SZ; guestfish's parser rejects it before any appliance is involved
    const nul = spawnSync('guestfish', [], { input: 'hivex-node-set-value 1 Hostname 1 "W\\x00I\\x00N\\x00\\x00\\x00"\n', encoding: 'utf8', env: { ...process.env, LIBGUESTFS_BACKEND: 'direct' } });
    expect(nul.status).to.not.equal(0);
    expect(nul.stderr).to.match(/invalid escape sequence in string/);
    // any other escaped byte passes the parser and reaches libguestfs (which then wants an appliance): it is NUL that is refused
    const other = spawnSync('guestfish', [], { input: 'hivex-node-set-value 1 Hostname 1 "W\\x01I"\n', encoding: 'utf8', env: { ...process.env, LIBGUESTFS_BACKEND: 'direct' } });
    expect(other.stderr).to.not.match(/invalid escape sequence/);
    expect(other.stderr).to.match(/hivex_node_set_value: call launch before using this function/);
  });
});

describe('windows: deploy, plan, apply, audit and inspect on NTFS images (guestfs)', function () {
  // The ghostprep runs are the scenario of fleet.ts, shared with unattended.test.ts (four appliance launches for
  // both specs: apply, two deploys, one plan of untouched images and written clones at the end, --jobs 1
  // wherever several images are opened; capture's seal check, inspect and audit, text and --json, read the
  // NTFS images host-side); the clones are read back host-side with ntfs-3g's tools.
  this.timeout(1_200_000);
  let fleet: WindowsFleet;
  let images: WindowsImages;
  let out: string;
  let outSpecialized: string;

  before(async () => {
    fleet = await windowsFleet();
    images = fleet.images;
    out = fleet.gen;
    outSpecialized = fleet.spec;
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
    // the same deploy restores unattended.test.ts's clones, one of which (ua04) fails by design: exit 3
    const r = fleet.deployGen;
    expect(r.status, r.stderr + r.stdout).to.equal(3);
    const machines = (JSON.parse(r.report) as { machines: Array<{ name: string; status: string }> }).machines;
    for (const m of MACHINES) expect(machines.find((x) => x.name === m)?.status, `${m}: ${r.stderr}`).to.equal('ok');
    expect(machines.filter((x) => x.status !== 'ok').map((x) => x.name), r.stderr).to.deep.equal([BONDED]);
    expect(r.stderr).to.not.match(/not generalized/);
  });

  it('a non-generalized master: plan warns about the risk and shows the registry changes as a .reg diff', () => {
    // pre: an overlay of the non-generalized master that no run writes
    const plan = fleet.plan;
    expect(plan.status, plan.stdout + plan.stderr).to.equal(2); // --detailed-exitcode: changes (pre and ua01)
    expect(plan.stderr).to.match(/warning: pre: the master Windows installation is not generalized.*Microsoft does not support cloning it.*same machine SID/);
    const pre = planSection(plan.stdout, 'pre');
    expect(pre).to.include('+++ b/Windows/System32/config/SYSTEM');
    expect(pre).to.include('master NOT generalized');
    expect(pre).to.include('[HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet001\\Control\\ComputerName\\ComputerName]');
    expect(pre).to.include(`-"ComputerName"="${MASTER_NAME}"`).and.include('+"ComputerName"="PRE"');
    expect(pre).to.include('+"ghostprep-01"="cmd /c echo first > C:\\\\first.txt"');
    expect(pre, 'auto: no unattend.xml for a specialized image').to.not.include('unattend.xml');
  });

  it('capture refuses the non-generalized master and names the risk', () => {
    const r = fleet.capture;
    expect(r.status).to.equal(1);
    expect(r.stderr).to.match(/is not sealed; still identifying:\n {2}Windows image state IMAGE_STATE_COMPLETE: the master Windows installation is not generalized/);
  });

  it('apply on the non-generalized clone warns too and succeeds (hive edits verified by reading back)', () => {
    const apply = fleet.apply;
    expect(apply.status, apply.stderr).to.equal(0);
    expect(apply.stderr).to.match(/warning: solo: the master Windows installation is not generalized/);
  });

  it('deploy of 2 clones from the non-generalized master warns about the risk for each machine', () => {
    const r = fleet.deploySpec;
    expect(r.status, r.stderr + r.stdout).to.equal(0);
    for (const m of SPECIALIZED) expect(r.stderr).to.match(new RegExp(`warning: ${m}: the master Windows installation is not generalized.*same machine SID`));
    expect(r.stderr, 'windows.network cannot reach a specialized image').to.match(/warning: spec01: the network settings reach Windows only through unattend.xml, which is not written \(the image is not generalized\)/);
  });

  it('inspect (text and --json) shows the computer name and generalized state of Windows clones', () => {
    const text = fleet.inspectText;
    expect(text.status, text.stderr).to.equal(0);
    expect(text.stdout).to.match(/win01\.qcow2\n\s+distro:\s+Windows 10 Pro[^\n]*family windows\)\n\s+system root: \/Windows\n\s+computer:\s+WIN01 \(DNS host name WIN01\)\n\s+generalized: yes \(image state IMAGE_STATE_GENERALIZE_RESEAL_TO_OOBE\)/);
    expect(text.stdout).to.match(/spec01\.qcow2\n[\s\S]*?computer:\s+SPEC01 \(DNS host name SPEC01\)\n\s+generalized: NO: cloning it as is is unsupported by Microsoft/);
    const json = fleet.inspectJson;
    expect(json.status, json.stderr).to.equal(0);
    const found = JSON.parse(json.stdout) as Array<{ target: string; identity: { windows: { computerName: string; hostname: string; generalized: boolean; imageState: string } } }>;
    expect(found.map((f) => [path.basename(f.target), f.identity.windows.computerName, f.identity.windows.hostname, f.identity.windows.generalized, f.identity.windows.imageState]).sort()).to.deep.equal([
      ['spec01.qcow2', 'SPEC01', 'SPEC01', false, 'IMAGE_STATE_COMPLETE'],
      ['win01.qcow2', 'WIN01', 'WIN01', true, 'IMAGE_STATE_GENERALIZE_RESEAL_TO_OOBE'],
    ]);
  });

  it('audit without --json lists each clone with its computer name and generalized state', () => {
    const r = fleet.auditText;
    expect(r.status, r.stderr + r.stdout).to.equal(0);
    for (const m of MACHINES) expect(r.stdout).to.match(new RegExp(`${m}\\.qcow2  ${m.toUpperCase()}  windows generalized  host ${m.toUpperCase()}`));
    for (const m of SPECIALIZED) expect(r.stdout).to.match(new RegExp(`${m}\\.qcow2  ${m.toUpperCase()}  windows NOT generalized  host ${m.toUpperCase()}`));
  });

  it('audit lists the three clones with their computer names as unique', () => {
    const r = fleet.auditJson;
    expect(r.status, r.stderr).to.equal(0);
    const report = JSON.parse(r.stdout) as { unique: boolean; duplicates: unknown[]; identities: Array<{ target: string; identity: { windows: { computerName: string; generalized: boolean } } }> };
    expect(report.unique).to.equal(true);
    expect(report.duplicates).to.deep.equal([]);
    expect(report.identities.map((i) => i.identity.windows.computerName)).to.deep.equal(['WIN01', 'WIN02', 'WIN03']);
    expect(report.identities.every((i) => i.identity.windows.generalized)).to.equal(true);
  });

  it('reading the clones back: three computer names in the hives (hivexget) and in unattend.xml; RunOnce on the specialized one; inspect output', () => {
    const seen: Record<string, { unattend: string | null; hive: Record<string, string>; runOnce: string; inspect: string }> = {};
    for (const m of [...MACHINES, 'solo']) {
      const c = fleet.clones[m];
      expect(c, `${m}: ${fleet.readErrors[m]}`).to.not.equal(undefined);
      const cs = '\\ControlSet001';
      seen[m] = {
        unattend: c!.unattend,
        hive: {
          computerName: hivexget(c!.system, `${cs}\\Control\\ComputerName\\ComputerName`, 'ComputerName'),
          active: hivexget(c!.system, `${cs}\\Control\\ComputerName\\ActiveComputerName`, 'ComputerName'),
          hostname: hivexget(c!.system, `${cs}\\Services\\Tcpip\\Parameters`, 'Hostname'),
          nvHostname: hivexget(c!.system, `${cs}\\Services\\Tcpip\\Parameters`, 'NV Hostname'),
        },
        runOnce: execFileSync('hivexregedit', ['--export', c!.software, '\\Microsoft\\Windows\\CurrentVersion\\RunOnce'], { encoding: 'utf8' }),
        inspect: c!.inspect,
      };
    }
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
    if (fleet.apply.status !== 0) this.skip();
    // the same plan run shows the changes of the untouched pre and ua01 (exit 2); these four have none
    const plan = fleet.plan;
    expect(plan.status, plan.stdout + plan.stderr).to.equal(2);
    for (const m of [...MACHINES, 'solo']) expect(planSection(plan.stdout, m), `${m}\n${plan.stdout.slice(0, 3000)}`).to.match(new RegExp(`^=== ${m} \\([^\\n]*\\): no changes\\n+$`));
  });
});
