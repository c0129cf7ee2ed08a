/**
 * Windows clones deployable unattended: OOBE accounts with passwords from
 * files or generated, offline domain join from djoin provisioning files,
 * product key and KMS, per-clone MachineGuid and no WSUS client IDs,
 * answer-file precedence, honest plans. Unit parts against MemoryGuest
 * (no appliance); the end-to-end parts deploy real NTFS images (the
 * scenario of fleet.ts, shared with windows.test.ts) and read them back
 * with ntfs-3g's tools, hivex (hivexget / hivexregedit) and xmllint.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { MemoryGuest } from '../../src/backends/memory.js';
import { renderMachine } from '../../src/fleet/prepare.js';
import type { RenderedMachine } from '../../src/core/machine.js';
import { validateFleet } from '../../src/fleet/validate-fleet.js';
import { windowsActivationOperation } from '../../src/operations/customize/windows-activation.js';
import { windowsComputerNameOperation } from '../../src/operations/customize/windows-computer-name.js';
import { windowsIdsOperation } from '../../src/operations/customize/windows-ids.js';
import { windowsUnattendOperation } from '../../src/operations/customize/windows-unattend.js';
import type { CustomizeOperation, ResolvedIdentity } from '../../src/core/operation.js';
import { assemblePlan } from '../../src/plan/assemble.js';
import { renderDiff, effectiveChanges } from '../../src/plan/diff.js';
import { detectWindows, windowsDistro } from '../../src/windows/detect.js';
import { machineGuidFor } from '../../src/windows/ids.js';
import { decodeSecretText, encodeUnattendPassword, generateWindowsPassword } from '../../src/windows/secrets.js';
import { mergeUnattend } from '../../src/windows/unattend-merge.js';
import { renderUnattendFile } from '../../src/windows/unattend.js';
import { tempDir } from '../helpers/rootfs.js';
import { MASTER_MACHINE_GUID, MASTER_WSUS_IDS, softwareHive, systemHive } from './image.js';
import { BONDED, djoinFile, fakeBlob, MACHINES as WIN_MACHINES, planSection, PRODUCT_KEY, UA_MACHINES, UA_SPEC, windowsFleet, type WindowsFleet } from './fleet.js';

/**
 * The unattend reference (Microsoft's "Unattended Windows Setup Reference"):
 * each setting ghostprep writes, by its parent hierarchy below the component,
 * and the configuration passes it is valid in.
 */
const REFERENCE: Record<string, readonly string[]> = {
  'Microsoft-Windows-Shell-Setup/ComputerName': ['specialize'],
  'Microsoft-Windows-Shell-Setup/ProductKey': ['specialize'],
  'Microsoft-Windows-Shell-Setup/TimeZone': ['specialize', 'oobeSystem', 'auditSystem'],
  'Microsoft-Windows-Shell-Setup/RegisteredOwner': ['specialize', 'oobeSystem', 'auditSystem'],
  'Microsoft-Windows-Shell-Setup/RegisteredOrganization': ['specialize', 'oobeSystem', 'auditSystem'],
  'Microsoft-Windows-Shell-Setup/AutoLogon': ['specialize', 'oobeSystem', 'auditSystem'],
  'Microsoft-Windows-Shell-Setup/AutoLogon/Enabled': ['specialize', 'oobeSystem', 'auditSystem'],
  'Microsoft-Windows-Shell-Setup/AutoLogon/LogonCount': ['specialize', 'oobeSystem', 'auditSystem'],
  'Microsoft-Windows-Shell-Setup/AutoLogon/Username': ['specialize', 'oobeSystem', 'auditSystem'],
  'Microsoft-Windows-Shell-Setup/AutoLogon/Password': ['specialize', 'oobeSystem', 'auditSystem'],
  'Microsoft-Windows-Shell-Setup/AutoLogon/Password/Value': ['specialize', 'oobeSystem', 'auditSystem'],
  'Microsoft-Windows-Shell-Setup/AutoLogon/Password/PlainText': ['specialize', 'oobeSystem', 'auditSystem'],
  'Microsoft-Windows-Shell-Setup/OOBE': ['oobeSystem'],
  'Microsoft-Windows-Shell-Setup/OOBE/HideEULAPage': ['oobeSystem'],
  'Microsoft-Windows-Shell-Setup/OOBE/HideLocalAccountScreen': ['oobeSystem'],
  'Microsoft-Windows-Shell-Setup/OOBE/HideOEMRegistrationScreen': ['oobeSystem'],
  'Microsoft-Windows-Shell-Setup/OOBE/HideOnlineAccountScreens': ['oobeSystem'],
  'Microsoft-Windows-Shell-Setup/OOBE/HideWirelessSetupInOOBE': ['oobeSystem'],
  'Microsoft-Windows-Shell-Setup/OOBE/NetworkLocation': ['oobeSystem'],
  'Microsoft-Windows-Shell-Setup/OOBE/ProtectYourPC': ['oobeSystem'],
  'Microsoft-Windows-Shell-Setup/UserAccounts': ['oobeSystem', 'auditSystem'],
  'Microsoft-Windows-Shell-Setup/UserAccounts/AdministratorPassword': ['oobeSystem', 'auditSystem'],
  'Microsoft-Windows-Shell-Setup/UserAccounts/AdministratorPassword/Value': ['oobeSystem', 'auditSystem'],
  'Microsoft-Windows-Shell-Setup/UserAccounts/AdministratorPassword/PlainText': ['oobeSystem', 'auditSystem'],
  'Microsoft-Windows-Shell-Setup/UserAccounts/LocalAccounts': ['oobeSystem', 'auditSystem'],
  'Microsoft-Windows-Shell-Setup/UserAccounts/LocalAccounts/LocalAccount': ['oobeSystem', 'auditSystem'],
  'Microsoft-Windows-Shell-Setup/UserAccounts/LocalAccounts/LocalAccount/Name': ['oobeSystem', 'auditSystem'],
  'Microsoft-Windows-Shell-Setup/UserAccounts/LocalAccounts/LocalAccount/Group': ['oobeSystem', 'auditSystem'],
  'Microsoft-Windows-Shell-Setup/UserAccounts/LocalAccounts/LocalAccount/DisplayName': ['oobeSystem', 'auditSystem'],
  'Microsoft-Windows-Shell-Setup/UserAccounts/LocalAccounts/LocalAccount/Description': ['oobeSystem', 'auditSystem'],
  'Microsoft-Windows-Shell-Setup/UserAccounts/LocalAccounts/LocalAccount/Password': ['oobeSystem', 'auditSystem'],
  'Microsoft-Windows-Shell-Setup/UserAccounts/LocalAccounts/LocalAccount/Password/Value': ['oobeSystem', 'auditSystem'],
  'Microsoft-Windows-Shell-Setup/UserAccounts/LocalAccounts/LocalAccount/Password/PlainText': ['oobeSystem', 'auditSystem'],
  'Microsoft-Windows-Shell-Setup/FirstLogonCommands': ['oobeSystem'],
  'Microsoft-Windows-UnattendedJoin/Identification': ['specialize'],
  'Microsoft-Windows-UnattendedJoin/Identification/Provisioning': ['specialize'],
  'Microsoft-Windows-UnattendedJoin/Identification/Provisioning/AccountData': ['specialize'],
  'Microsoft-Windows-UnattendedJoin/Identification/Credentials': ['specialize'],
  'Microsoft-Windows-UnattendedJoin/Identification/Credentials/Domain': ['specialize'],
  'Microsoft-Windows-UnattendedJoin/Identification/Credentials/Username': ['specialize'],
  'Microsoft-Windows-UnattendedJoin/Identification/Credentials/Password': ['specialize'],
  'Microsoft-Windows-UnattendedJoin/Identification/JoinDomain': ['specialize'],
  'Microsoft-Windows-UnattendedJoin/Identification/MachineObjectOU': ['specialize'],
};
/** Components whose every element the table must know (the others predate it and have their own tests). */
const CHECKED_COMPONENTS = new Set(['Microsoft-Windows-Shell-Setup', 'Microsoft-Windows-UnattendedJoin']);
/** Subtrees checked elsewhere (FirstLogonCommands' SynchronousCommand: windows.test.ts). */
const UNCHECKED_BELOW = ['Microsoft-Windows-Shell-Setup/FirstLogonCommands/'];

interface Setting { pass: string; path: string; text: string | null }
const SETTINGS = `
import sys, json
from xml.dom import minidom
doc = minidom.parseString(sys.stdin.buffer.read())
out = []
def walk(node, pass_, path):
    for c in node.childNodes:
        if c.nodeType != c.ELEMENT_NODE:
            continue
        kids = [k for k in c.childNodes if k.nodeType == k.ELEMENT_NODE]
        text = None if kids else ''.join(t.data for t in c.childNodes if t.nodeType == t.TEXT_NODE)
        if c.localName == 'settings':
            walk(c, c.getAttribute('pass'), '')
        elif c.localName == 'component':
            walk(c, pass_, c.getAttribute('name'))
        else:
            p = path + '/' + c.localName
            out.append({'pass': pass_, 'path': p, 'text': text})
            walk(c, pass_, p)
walk(doc.documentElement, '', '')
print(json.dumps(out))
`;
/** Every setting of an answer file with its pass and its path below the component (python3's minidom: malformed XML throws). */
function settings(xml: string): Setting[] {
  return JSON.parse(execFileSync('python3', ['-c', SETTINGS], { input: xml, encoding: 'utf8' })) as Setting[];
}
const at = (s: Setting[], p: string): Array<string | null> => s.filter((x) => x.path === p).map((x) => x.text);

/** The reference's own examples (password "pw"), and the encoding computed by iconv + base64, not by our code. */
function iconvBase64(text: string): string {
  return execFileSync('sh', ['-c', 'printf %s "$1" | iconv -f UTF-8 -t UTF-16LE | base64 -w0', 'sh', text], { encoding: 'utf8' }).trim();
}

function renderFleet(profileYaml: string, inventoryYaml: string, extra: Record<string, string | Buffer> = {}): { machines: RenderedMachine[]; diagnostics: ReturnType<typeof validateFleet>['diagnostics']; dir: string } {
  const dir = tempDir('ghostprep-win-unattended-');
  writeFileSync(path.join(dir, 'win.yaml'), profileYaml);
  writeFileSync(path.join(dir, 'inv.yaml'), inventoryYaml);
  for (const [rel, text] of Object.entries(extra)) {
    mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    writeFileSync(path.join(dir, rel), text);
  }
  const v = validateFleet([path.join(dir, 'win.yaml')], path.join(dir, 'inv.yaml'));
  return { machines: v.machines.map((m) => renderMachine(m)), diagnostics: v.diagnostics, dir };
}

function windowsGuest(flavour: 'generalized' | 'specialized', files: Record<string, string | Buffer | { dir: true }> = {}, sys = systemHive(flavour)): MemoryGuest {
  return new MemoryGuest({ '/Windows/System32/config/SYSTEM': sys, '/Windows/System32/config/SOFTWARE': softwareHive(flavour), '/Windows/Panther': { dir: true }, ...files }, 'mem');
}

function identity(machineId: string | undefined, kept: Map<string, string> = new Map()): ResolvedIdentity {
  return { machineId, pending: false, hostKeys: [], stateSecret: (file, make) => ({ value: kept.get(file) ?? kept.set(file, make()).get(file)!, pending: false }) };
}

async function planOp(op: CustomizeOperation, guest: MemoryGuest, machine: RenderedMachine, id: ResolvedIdentity = identity('0123456789abcdef0123456789abcdef')) {
  const info = await detectWindows(guest);
  const warnings: string[] = [];
  const changes = await op.plan({ guest, distro: windowsDistro(info!), machine, profile: machine.profile, identity: id, warn: (m) => warnings.push(m) });
  return { changes, warnings };
}

const INV1 = 'defaults: {profile: win}\nmachines:\n  - {name: office01}\n';

describe('windows unattended: passwords, accounts, domain join, product key (no appliance)', () => {
  it('encodes passwords as unattend expects: the reference examples, and iconv + base64 for random passwords', () => {
    // the examples of the unattend reference (LocalAccount Password and AdministratorPassword, password "pw")
    expect(encodeUnattendPassword('pw', 'Password')).to.equal('cAB3AFAAYQBzAHMAdwBvAHIAZAA=');
    expect(encodeUnattendPassword('pw', 'AdministratorPassword')).to.equal('cAB3AEEAZABtAGkAbgBpAHMAdAByAGEAdABvAHIAUABhAHMAcwB3AG8AcgBkAA==');
    fc.assert(fc.property(fc.string({ minLength: 1, maxLength: 30, unit: 'grapheme' }), fc.constantFrom('Password' as const, 'AdministratorPassword' as const), (pw, element) => {
      expect(encodeUnattendPassword(pw, element)).to.equal(iconvBase64(pw + element));
    }), { numRuns: 25 });
    const generated = Array.from({ length: 50 }, () => generateWindowsPassword());
    expect(new Set(generated).size).to.equal(50);
    for (const p of generated) expect(p).to.match(/^(?=.*[a-z])(?=.*[A-Z])(?=.*[0-9])(?=.*[#%+\-.:=@_])[A-Za-z0-9#%+\-.:=@_]{20}$/);
    // djoin /savefile writes UTF-16LE with a BOM; Linux editors write UTF-8
    expect(decodeSecretText(djoinFile('QUJD'))).to.equal('QUJD');
    expect(decodeSecretText(Buffer.from('\uFEFFsecret\n'))).to.equal('secret');
  });

  it('renders accounts, AutoLogon, OOBE screens, offline join and product key where the unattend reference puts them', () => {
    const blob = fakeBlob('office01');
    const profile = `profile: win
windows:
  productKeyFile: keys/{name}.key
  oobe:
    hideEula: true
    hideOEMRegistrationScreen: true
    hideOnlineAccountScreens: true
    hideLocalAccountScreen: true
    hideWirelessSetupInOOBE: true
    protectYourPC: 3
    networkLocation: Work
    administratorPassword: {passwordFile: "secrets/{{machine.name}}-admin.txt"}
    accounts:
      - {name: ops, passwordFile: secrets/ops.txt, displayName: "Ops & Co", description: "<ops>"}
      - {name: kiosk, group: Users, generate: true}
    autoLogon: {user: kiosk, count: 3}
  domainJoin: {provisioningFile: "djoin/{name}.txt"}
  firstLogonCommands: [{run: "cmd /c ver"}]
`;
    const { machines, diagnostics } = renderFleet(profile, INV1, {
      'secrets/office01-admin.txt': 'Adm1n & <pw>\n', 'secrets/ops.txt': 'ops-Secret1', 'djoin/office01.txt': djoinFile(blob), 'keys/office01.key': 'ABCDE-12345-FGHIJ-67890-KLMNO\n',
    });
    expect(diagnostics.filter((d) => d.severity === 'error'), JSON.stringify(diagnostics)).to.deep.equal([]);
    const kept = new Map<string, string>();
    const out = renderUnattendFile(machines[0]!, 'amd64', identity(undefined, kept));
    expect(out.secret).to.equal(true);
    const s = settings(out.text);
    for (const x of s) {
      const component = x.path.split('/')[0]!;
      if (!CHECKED_COMPONENTS.has(component) || UNCHECKED_BELOW.some((p) => x.path.startsWith(p))) continue;
      expect(REFERENCE[x.path], `${x.path} is not a setting of the unattend reference`).to.not.equal(undefined);
      expect(REFERENCE[x.path], `${x.path} in pass ${x.pass}`).to.include(x.pass);
    }
    const kiosk = kept.get('windows/password-kiosk')!;
    expect(at(s, 'Microsoft-Windows-Shell-Setup/UserAccounts/AdministratorPassword/Value')).to.deep.equal([iconvBase64('Adm1n & <pw>AdministratorPassword')]);
    expect(at(s, 'Microsoft-Windows-Shell-Setup/UserAccounts/LocalAccounts/LocalAccount/Password/Value')).to.deep.equal([iconvBase64('ops-Secret1Password'), iconvBase64(kiosk + 'Password')]);
    expect(at(s, 'Microsoft-Windows-Shell-Setup/UserAccounts/LocalAccounts/LocalAccount/Password/PlainText')).to.deep.equal(['false', 'false']);
    expect(at(s, 'Microsoft-Windows-Shell-Setup/UserAccounts/LocalAccounts/LocalAccount/Name')).to.deep.equal(['ops', 'kiosk']);
    expect(at(s, 'Microsoft-Windows-Shell-Setup/UserAccounts/LocalAccounts/LocalAccount/Group')).to.deep.equal(['Administrators', 'Users']);
    expect(at(s, 'Microsoft-Windows-Shell-Setup/UserAccounts/LocalAccounts/LocalAccount/DisplayName')).to.deep.equal(['Ops & Co']);
    expect(at(s, 'Microsoft-Windows-Shell-Setup/AutoLogon/Username')).to.deep.equal(['kiosk']);
    expect(at(s, 'Microsoft-Windows-Shell-Setup/AutoLogon/LogonCount')).to.deep.equal(['3']);
    expect(at(s, 'Microsoft-Windows-Shell-Setup/AutoLogon/Password/Value')).to.deep.equal([iconvBase64(kiosk + 'Password')]);
    expect(at(s, 'Microsoft-Windows-UnattendedJoin/Identification/Provisioning/AccountData')).to.deep.equal([blob]);
    expect(at(s, 'Microsoft-Windows-Shell-Setup/ProductKey')).to.deep.equal(['ABCDE-12345-FGHIJ-67890-KLMNO']);
    expect(s.filter((x) => x.path.startsWith('Microsoft-Windows-Shell-Setup/OOBE/')).map((x) => x.path.split('/').pop())).to.deep.equal(
      ['HideEULAPage', 'HideLocalAccountScreen', 'HideOEMRegistrationScreen', 'HideOnlineAccountScreens', 'HideWirelessSetupInOOBE', 'ProtectYourPC', 'NetworkLocation']);
    expect(s.some((x) => /Credentials|JoinDomain/.test(x.path)), 'provisioning: no credentials').to.equal(false);
    // the same machine again: the generated password is the kept one
    expect(renderUnattendFile(machines[0]!, 'amd64', identity(undefined, kept)).text).to.equal(out.text);
  });

  it('refuses a literal password anywhere and the deprecated SkipMachineOOBE / SkipUserOOBE, each at its line, never echoing the password', () => {
    const profile = `profile: win
windows:
  oobe:
    skipMachineOOBE: true
    skipUserOOBE: true
    administratorPassword: {password: "Hunter2-admin"}
    accounts:
      - {name: ops, password: "Hunter2-ops"}
    autoLogon: {user: ops, password: "Hunter2-auto"}
  domainJoin:
    credentials: {domain: corp, username: joiner, passwordFile: pw.txt, password: "Hunter2-join"}
`;
    const { machines, diagnostics } = renderFleet(profile, INV1, { 'pw.txt': 'x' });
    const errors = diagnostics.filter((d) => d.severity === 'error');
    const lineOf = (re: RegExp) => errors.filter((d) => re.test(d.message)).map((d) => d.line!).sort((a, b) => a - b);
    expect(lineOf(/deprecated since Windows 8: Setup may stop/), JSON.stringify(errors)).to.deep.equal([4, 5]);
    expect(lineOf(/never taken from the profile text/), JSON.stringify(errors)).to.deep.equal([6, 8, 9, 11]);
    expect(JSON.stringify(diagnostics)).to.not.include('Hunter2');
    expect(() => renderUnattendFile(machines[0]!, 'amd64', identity(undefined))).to.throw(/deprecated since Windows 8|never taken from the profile/);
    // whatever the password and wherever it is written: refused at its line, never echoed, nothing rendered
    const where = [
      (pw: string) => `  oobe: {administratorPassword: {password: ${JSON.stringify(pw)}}}\n`,
      (pw: string) => `  oobe: {accounts: [{name: ops, password: ${JSON.stringify(pw)}}]}\n`,
      (pw: string) => `  domainJoin: {credentials: {domain: corp, username: j, passwordFile: pw.txt, password: ${JSON.stringify(pw)}}}\n`,
    ];
    fc.assert(fc.property(fc.string({ minLength: 6, maxLength: 24 }).filter((pw) => pw.trim().length >= 6 && !/^[0-9. ]+$/.test(pw)), fc.integer({ min: 0, max: where.length - 1 }), (pw, k) => {
      const r = renderFleet(`profile: win\nwindows:\n${where[k]!(pw)}`, INV1, { 'pw.txt': 'x' });
      const refused = r.diagnostics.filter((d) => d.severity === 'error' && /never taken from the profile text/.test(d.message));
      expect(refused.map((d) => d.line), JSON.stringify(r.diagnostics)).to.deep.equal([3]);
      expect(JSON.stringify(r.diagnostics)).to.not.include(JSON.stringify(pw).slice(1, -1));
      expect(() => renderUnattendFile(r.machines[0]!, 'amd64', identity(undefined))).to.throw(/never taken from the profile text/);
    }), { numRuns: 30 });
  });

  it('validate: missing secret files, a provisioning file that is not djoin output, an unknown AutoLogon user: located errors; credentials: a warning', () => {
    const profile = `profile: win
windows:
  oobe:
    accounts:
      - {name: ops, passwordFile: "missing/{{machine.name}}.txt"}
    autoLogon: {user: nobody}
  domainJoin:
    provisioningFile: "djoin/{name}.txt"
    credentials: {domain: corp, username: joiner, passwordFile: pw.txt}
`;
    const { diagnostics } = renderFleet(profile, INV1, { 'djoin/office01.txt': 'this is not base64 at all!', 'pw.txt': 'join-pw' });
    const by = (line: number) => diagnostics.filter((d) => d.line === line).map((d) => `${d.severity}: ${d.message}`).join('\n');
    expect(by(5)).to.match(/error: .*password file of ops .*missing\/office01\.txt: file not found/);
    expect(by(6)).to.match(/error: AutoLogon user "nobody" is not one of windows\.oobe\.accounts/);
    expect(by(8)).to.match(/error: .*djoin\/office01\.txt is not the output of djoin \/provision/);
    expect(by(9)).to.match(/warning: with provisioningFile, Windows Setup ignores credentials/);
    expect(JSON.stringify(diagnostics)).to.not.include('join-pw').and.not.include('not base64 at all');
  });

  it('a bad computer name is reported at the inventory entry it comes from, and at the profile line', () => {
    const { diagnostics } = renderFleet('profile: win\nwindows:\n  computerName: "{{machine.name}}-workstation"\n', 'defaults: {profile: win}\nmachines:\n  - {name: ok1}\n  - {name: office01}\n');
    const errors = diagnostics.filter((d) => d.severity === 'error' && /at most 15/.test(d.message));
    expect(errors.every((d) => /office01/.test(d.message)), 'ok1-workstation is 15 characters: fine').to.equal(true);
    expect(errors.map((d) => [path.basename(d.file!), d.line]).sort()).to.deep.equal([['inv.yaml', 4], ['win.yaml', 3]]);
    expect(errors.find((d) => d.file!.endsWith('inv.yaml'))!.message).to.match(/office01-workstation.*comes from this entry's name through .*win\.yaml:3/);
    const fromHost = renderFleet('profile: win\nwindows: {}\n', 'defaults: {profile: win}\nmachines:\n  - {name: office_01}\n').diagnostics.filter((d) => d.severity === 'error' && /NetBIOS/.test(d.message));
    expect(fromHost.map((d) => [path.basename(d.file!), d.line])).to.deep.include(['inv.yaml', 3]);
  });

  it('plan: an unattend.xml with secrets is a secret change (no password, blob or key in the diff); KMS host in the registry', async () => {
    const blob = fakeBlob('office01');
    const { machines } = renderFleet('profile: win\nwindows:\n  productKey: ABCDE-12345-FGHIJ-67890-KLMNO\n  kms: {host: kms.corp.example}\n  oobe: {administratorPassword: {passwordFile: admin.txt}}\n  domainJoin: {provisioningFile: "{name}.djoin"}\n', INV1, { 'admin.txt': 'S3cret-Admin!', 'office01.djoin': djoinFile(blob) });
    const guest = windowsGuest('generalized');
    const { changes } = await planOp(windowsUnattendOperation, guest, machines[0]!);
    const shown = (await effectiveChanges(guest, changes)).map(renderDiff).join('\n');
    expect(shown).to.match(/secret content not shown/);
    for (const secret of ['S3cret-Admin!', encodeUnattendPassword('S3cret-Admin!', 'AdministratorPassword'), blob, 'ABCDE-12345']) expect(shown).to.not.include(secret);
    const kms = await planOp(windowsActivationOperation, guest, machines[0]!);
    const kmsShown = (await effectiveChanges(guest, kms.changes)).map(renderDiff).join('\n');
    expect(kmsShown).to.include('+"KeyManagementServiceName"="kms.corp.example"').and.include('+"KeyManagementServicePort"="1688"').and.not.include('ABCDE');
    // without any secret, unattend.xml stays readable in the plan
    const plain = renderFleet('profile: win\nwindows: {registeredOwner: ops}\n', INV1);
    const p = await planOp(windowsUnattendOperation, guest, plain.machines[0]!);
    expect((await effectiveChanges(guest, p.changes)).map(renderDiff).join('\n')).to.include('+      <ComputerName>office01</ComputerName>');
  });

  it('windows-ids: MachineGuid from the machine identity (distinct per machine-id, stable for one), WSUS client IDs and SMSCFG.INI deleted; keep warns', async () => {
    fc.assert(fc.property(fc.uniqueArray(fc.stringMatching(/^[0-9a-f]{32}$/), { minLength: 2, maxLength: 20 }), (ids) => {
      const guids = ids.map(machineGuidFor);
      expect(new Set(guids).size).to.equal(ids.length);
      for (const g of guids) expect(g).to.match(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(ids.map(machineGuidFor)).to.deep.equal(guids);
    }));
    const { machines } = renderFleet('profile: win\nwindows: {}\n', INV1);
    const guest = windowsGuest('specialized', { '/Windows/SMSCFG.INI': 'x' });
    const { changes, warnings } = await planOp(windowsIdsOperation, guest, machines[0]!);
    const shown = (await effectiveChanges(guest, changes)).map(renderDiff).join('\n');
    expect(shown).to.include(`-"MachineGuid"="${MASTER_MACHINE_GUID}"`).and.include(`+"MachineGuid"="${machineGuidFor('0123456789abcdef0123456789abcdef')}"`);
    for (const [name] of Object.entries(MASTER_WSUS_IDS)) expect(shown).to.match(new RegExp(`^-"${name}"=`, 'm'));
    expect(shown, 'values not touched are not in the diff').to.not.include('LastWaitTimeout');
    expect(changes.map((c) => `${c.op} ${c.path}`)).to.include('delete /Windows/SMSCFG.INI');
    expect(warnings).to.deep.equal([]);
    const keep = await planOp(windowsIdsOperation, guest, machines[0]!, identity(undefined));
    expect(keep.warnings.join()).to.match(/machineId: keep: the clone keeps the master's MachineGuid/);
  });

  it('several operations editing one hive make one registry change with all their edits (RunOnce, MachineGuid, WSUS IDs, KMS)', async () => {
    const { machines } = renderFleet('profile: win\nwindows: {kms: {host: kms.corp.example}, firstLogonCommands: [{run: "cmd /c ver"}]}\n', INV1);
    const guest = windowsGuest('specialized');
    const r = machines[0]!;
    const changes = await assemblePlan({ guest, distro: windowsDistro((await detectWindows(guest))!), machine: r, profile: r.profile, identity: identity('0123456789abcdef0123456789abcdef') });
    const sw = changes.filter((c) => c.path === '/Windows/System32/config/SOFTWARE');
    expect(sw).to.have.length(1);
    const edits = (sw[0] as unknown as { edits: Array<{ key: string; name: string }> }).edits.map((e) => e.name);
    expect(edits).to.include.members(['ghostprep-01', 'MachineGuid', 'SusClientId', 'KeyManagementServiceName']);
    expect(sw[0]!.source).to.equal('windows-run-once, windows-ids, windows-activation');
  });

  it('plan refuses a dirty hive with a readable message, before anything is written', async () => {
    const sys = systemHive('generalized');
    sys.writeUInt32LE(sys.readUInt32LE(4) + 1, 4);
    const { machines } = renderFleet('profile: win\nwindows: {}\n', INV1);
    const guest = windowsGuest('generalized', {}, sys);
    let message = '';
    await planOp(windowsComputerNameOperation, guest, machines[0]!).catch((e: Error) => { message = e.message; });
    expect(message).to.match(/^\/Windows\/System32\/config\/SYSTEM: the registry hive is dirty .*shut it down fully/);
    expect(message).to.not.match(/cannot registry/);
  });

  it('answer-file precedence: UnattendFile, Panther\\Unattend and root answer files are warned about; replace says so; merge keeps the master\'s settings', async () => {
    const masterXml = `<?xml version="1.0" encoding="utf-8"?>
<unattend xmlns="urn:schemas-microsoft-com:unattend">
  <settings pass="specialize">
    <component name="Microsoft-Windows-Shell-Setup" processorArchitecture="amd64" publicKeyToken="31bf3856ad364e35" language="neutral" versionScope="nonSxS">
      <CopyProfile>true</CopyProfile>
      <ComputerName>MASTER</ComputerName>
    </component>
  </settings>
  <settings pass="oobeSystem">
    <component name="Microsoft-Windows-Shell-Setup" processorArchitecture="amd64" publicKeyToken="31bf3856ad364e35" language="neutral" versionScope="nonSxS" xmlns:wcm="http://schemas.microsoft.com/WMIConfig/2002/State">
      <OOBE>
        <HideEULAPage>true</HideEULAPage>
        <ProtectYourPC>1</ProtectYourPC>
      </OOBE>
      <UserAccounts>
        <LocalAccounts>
          <LocalAccount wcm:action="add"><Password><Value>bWFzdGVy</Value><PlainText>false</PlainText></Password><Group>Administrators</Group><Name>master-admin</Name></LocalAccount>
        </LocalAccounts>
      </UserAccounts>
    </component>
  </settings>
</unattend>
`;
    const profile = (mode: string) => `profile: win\nwindows:\n  unattend: ${mode}\n  oobe: {protectYourPC: 3, hideOnlineAccountScreens: true, accounts: [{name: ops, passwordFile: ops.txt}]}\n`;
    const sysWithFile = systemHive('generalized', { unattendFile: 'C:\\Deploy\\old.xml' });
    const guestWith = () => windowsGuest('generalized', {
      '/Windows/Panther/unattend.xml': masterXml, '/Windows/Panther/Unattend': { dir: true }, '/Windows/Panther/Unattend/Unattend.xml': '<unattend/>', '/Autounattend.xml': '<unattend/>',
    }, sysWithFile);
    const merged = renderFleet(profile('merge'), INV1, { 'ops.txt': 'ops-pw' });
    const m = await planOp(windowsUnattendOperation, guestWith(), merged.machines[0]!);
    expect(m.warnings.join('\n')).to.match(/\/Windows\/Panther\/Unattend\/Unattend\.xml: Windows Setup reads %WINDIR%\\Panther\\Unattend before Panther\\unattend\.xml/);
    expect(m.warnings.join('\n')).to.match(/answer file at the volume root \(\/Autounattend\.xml\)/);
    expect(m.warnings.join('\n')).to.match(/HKLM\\SYSTEM\\Setup UnattendFile = "C:\\\\Deploy\\\\old\.xml"\): Windows Setup reads it before Panther\\unattend\.xml/);
    const change = m.changes[0] as { content: Buffer; reason: string };
    expect(change.reason).to.match(/merged into the master's unattend\.xml/);
    const s = settings(change.content.toString('utf8'));
    expect(at(s, 'Microsoft-Windows-Shell-Setup/CopyProfile'), 'the master\'s own setting kept').to.deep.equal(['true']);
    expect(at(s, 'Microsoft-Windows-Shell-Setup/ComputerName'), 'ours overrides').to.deep.equal(['office01']);
    expect(at(s, 'Microsoft-Windows-Shell-Setup/OOBE/HideEULAPage')).to.deep.equal(['true']);
    expect(at(s, 'Microsoft-Windows-Shell-Setup/OOBE/ProtectYourPC')).to.deep.equal(['3']);
    expect(at(s, 'Microsoft-Windows-Shell-Setup/OOBE/HideOnlineAccountScreens')).to.deep.equal(['true']);
    expect(at(s, 'Microsoft-Windows-Shell-Setup/UserAccounts/LocalAccounts/LocalAccount/Name'), 'the master\'s account kept, ours added').to.deep.equal(['master-admin', 'ops']);
    execFileSync('xmllint', ['--noout', '-'], { input: change.content });
    const replaced = await planOp(windowsUnattendOperation, guestWith(), renderFleet(profile('replace'), INV1, { 'ops.txt': 'ops-pw' }).machines[0]!);
    expect((replaced.changes[0] as { reason: string }).reason).to.match(/replaces the master's own unattend\.xml/);
    expect(replaced.warnings.join('\n')).to.match(/the master has its own unattend\.xml; it is replaced \(windows\.unattend: replace, the default\)/);
    expect(settings((replaced.changes[0] as { content: Buffer }).content.toString()).some((x) => x.path.endsWith('/CopyProfile'))).to.equal(false);
    expect(() => mergeUnattend('<unattend><settings></unattend>', '<unattend/>', '/Windows/Panther/unattend.xml')).to.throw(/\/Windows\/Panther\/unattend\.xml: the master's unattend\.xml cannot be merged \(line 1: <\/unattend> does not close <settings>\)/);
  });

  it('a specialized clone that keeps the master\'s time zone, accounts or join is warned about', async () => {
    const { machines } = renderFleet('profile: win\ntimezone: Europe/Berlin\nwindows: {domainJoin: {provisioningFile: x.txt}}\n', INV1, { 'x.txt': fakeBlob('x') });
    const { changes, warnings } = await planOp(windowsUnattendOperation, windowsGuest('specialized'), machines[0]!);
    expect(changes).to.deep.equal([]);
    expect(warnings.join('\n')).to.match(/the time zone reaches Windows only through unattend\.xml, which is not written \(the image is not generalized\): the clone keeps the master's time zone/);
    expect(warnings.join('\n')).to.match(/joins no domain/);
  });
});

describe('windows unattended: deploy of generalized and specialized clones, read back with hivex and xmllint (guestfs)', function () {
  // The ghostprep runs are the scenario of fleet.ts, shared with windows.test.ts: this spec's plan and deploys are
  // the same runs as that spec's (one appliance each, --jobs 1), its clones are read back host-side (ntfs-3g).
  this.timeout(1_200_000);
  const MACHINES = UA_MACHINES;
  const SPEC = UA_SPEC;
  let fleet: WindowsFleet;

  before(async () => {
    fleet = await windowsFleet();
  });

  it('deploy of 3 clones from a generalized image with windows.oobe and windows.domainJoin.provisioningFile; a 4th whose plan fails leaves no clone behind', () => {
    // ua01 planned on the generalized base itself, which no run writes (the scenario's one plan, after the deploys)
    const plan = fleet.plan;
    expect(plan.status, plan.stderr + plan.stdout).to.equal(2); // --detailed-exitcode: changes
    expect(planSection(plan.stdout, 'ua01')).to.match(/unattend\.xml[\s\S]*secret/);
    const r = fleet.deployGen;
    expect(r.status, r.stderr + r.stdout).to.equal(3);
    const machines = (JSON.parse(r.report) as { machines: Array<{ name: string; status: string; error: string | null }> }).machines;
    // the same deploy restores windows.test.ts's clones (win*): ok too
    expect(machines.filter((m) => m.status === 'ok' && !WIN_MACHINES.includes(m.name)).map((m) => m.name)).to.deep.equal(MACHINES);
    const bonded = machines.find((m) => m.name === BONDED)!;
    expect(bonded.status).to.equal('failed');
    expect(bonded.error).to.match(/bonds\/bond0: Windows unattend\.xml has no settings for a bond.*its clone, a bare copy of the base, was removed from the output directory/);
  });

  it('deploy of 3 clones from a specialized image', () => {
    const r = fleet.deploySpec;
    expect(r.status, r.stderr + r.stdout).to.equal(0);
    expect(r.report).to.not.equal('');
    expect(r.stderr).to.match(/us01: the time zone reaches Windows only through unattend\.xml/);
  });

  it('reads the six clones back: valid unattend.xml with own name and blob each; distinct MachineGuid and no WSUS IDs (hivex); no secret in any output', () => {
    const { blobs, passwords, state } = fleet;
    const seen: Record<string, { unattend: string | null; guid: string; update: string; kms: string; smscfg: boolean }> = {};
    for (const m of [...MACHINES, ...SPEC]) {
      const c = fleet.clones[m];
      expect(c, `${m}: ${fleet.readErrors[m]}`).to.not.equal(undefined);
      const sw = c!.software;
      seen[m] = {
        unattend: c!.unattend,
        guid: execFileSync('hivexget', [sw, '\\Microsoft\\Cryptography', 'MachineGuid'], { encoding: 'utf8' }).trim(),
        update: execFileSync('hivexregedit', ['--export', sw, '\\Microsoft\\Windows\\CurrentVersion\\WindowsUpdate'], { encoding: 'utf8' }),
        kms: ['KeyManagementServiceName', 'KeyManagementServicePort'].map((v) => execFileSync('hivexget', [sw, '\\Microsoft\\Windows NT\\CurrentVersion\\SoftwareProtectionPlatform', v], { encoding: 'utf8' }).trim()).join(':'),
        smscfg: c!.smscfg,
      };
    }
    const host = path.join(fleet.work, 'hives');
    mkdirSync(host, { recursive: true });
    for (const m of MACHINES) {
      const s = seen[m]!;
      const file = path.join(host, `${m}-unattend.xml`);
      writeFileSync(file, s.unattend!);
      execFileSync('xmllint', ['--noout', file]);
      const x = settings(s.unattend!);
      expect(at(x, 'Microsoft-Windows-Shell-Setup/ComputerName')).to.deep.equal([m.toUpperCase()]);
      expect(at(x, 'Microsoft-Windows-UnattendedJoin/Identification/Provisioning/AccountData')).to.deep.equal([blobs[m]]);
      expect(at(x, 'Microsoft-Windows-Shell-Setup/UserAccounts/AdministratorPassword/Value')).to.deep.equal([iconvBase64(passwords[m] + 'AdministratorPassword')]);
      const ops = readFileSync(path.join(state, m, 'windows/password-ops'), 'utf8');
      expect(statSync(path.join(state, m, 'windows/password-ops')).mode & 0o777).to.equal(0o600);
      expect(at(x, 'Microsoft-Windows-Shell-Setup/UserAccounts/LocalAccounts/LocalAccount/Password/Value')).to.deep.equal([iconvBase64(ops + 'Password')]);
      expect(at(x, 'Microsoft-Windows-Shell-Setup/ProductKey')).to.deep.equal([PRODUCT_KEY]);
    }
    expect(new Set(MACHINES.map((m) => readFileSync(path.join(state, m, 'windows/password-ops'), 'utf8'))).size, 'one generated password per machine').to.equal(3);
    for (const m of SPEC) expect(seen[m]!.unattend, 'a specialized image gets no unattend.xml').to.equal(null);
    const all = [...MACHINES, ...SPEC];
    const guids = all.map((m) => seen[m]!.guid);
    expect(new Set(guids).size, guids.join(' ')).to.equal(6);
    expect(guids).to.not.include(MASTER_MACHINE_GUID);
    for (const m of all) {
      const s = seen[m]!;
      expect(s.guid).to.equal(machineGuidFor(readFileSync(path.join(state, m, 'machine-id'), 'utf8').trim()));
      for (const name of Object.keys(MASTER_WSUS_IDS)) expect(s.update).to.not.include(`"${name}"`);
      expect(s.update, 'other values of the key kept').to.include('"LastWaitTimeout"');
      expect(s.kms).to.equal('kms.corp.example:1689');
      expect(s.smscfg).to.equal(false);
    }
    // no password, encoded password, provisioning blob or product key in any plan, report or log of the scenario's runs
    const text = fleet.outputs.join('\n');
    expect(text.length).to.be.greaterThan(1000);
    const secrets = [
      ...Object.values(passwords), ...Object.values(passwords).map((p) => encodeUnattendPassword(p, 'AdministratorPassword')), ...Object.values(blobs).map((b) => b.slice(0, 40)), PRODUCT_KEY,
      ...MACHINES.map((m) => readFileSync(path.join(state, m, 'windows/password-ops'), 'utf8')),
    ];
    for (const secret of secrets) expect(text.includes(secret), `a secret (${secret.length} chars) in the outputs`).to.equal(false);
    // ua04's clone was removed; the others of this deploy are windows.test.ts's
    expect(readdirSync(fleet.gen).sort()).to.deep.equal([...MACHINES, ...WIN_MACHINES].map((m) => `${m}.qcow2`).sort());
  });
});
