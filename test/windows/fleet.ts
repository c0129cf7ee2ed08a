/**
 * The end-to-end scenario of the Windows specs (windows.test.ts and
 * unattended.test.ts), run once per test process and asserted on by both:
 * every ghostprep run on the NTFS images, in the order the cases need, each
 * over as many clones and machines as its assertions allow, so that a run
 * is one appliance (--jobs 1) shared by both specs' machines:
 *
 *   capture   the specialized base (refused)
 *   apply     solo
 *   deploy    generalized base: win01-03 (win), ua01-03 and ua04 (winua; ua04's plan fails)
 *   deploy    specialized base: spec01-02 (win), us01-03 (winua)
 *   inspect   win01 and spec01, text and --json
 *   audit     text over the five win/spec clones, --json over win01-03
 *   plan      (--detailed-exitcode) win01-03 and solo after deploy and apply (no changes), and
 *             two targets nothing ever writes: pre (an overlay of the specialized base, profile
 *             win) and ua01 (the generalized base itself, profile winua), whose plans are those
 *             of a clone before any run
 *
 * Four appliance launches (capture's seal check, inspect and audit read the
 * NTFS images host-side, no appliance): one plan, after everything, shows
 * both the plans of untouched images and the empty plans of the written
 * clones. The clones are then read back host-side with ntfs-3g's tools
 * (ntfs-read.ts: no appliance).
 */
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { formatIdentity } from '../../src/cli/commands/inspect.js';
import { inspectGuest } from '../../src/fleet/guest-identity.js';
import { ghostprep } from '../helpers/cli.js';
import { tempDir } from '../helpers/rootfs.js';
import { windowsImages, type WindowsImages } from './image.js';
import { readNtfsClone } from './ntfs-read.js';

export type Run = ReturnType<typeof ghostprep>;

/** windows.test.ts's profile (name `win`). */
export const PROFILE = `profile: win
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
/** Clones of the generalized master (profile win). */
export const MACHINES = ['win01', 'win02', 'win03'];
/** Cloned from the master that is not generalized (profile win). */
export const SPECIALIZED = ['spec01', 'spec02'];
const winEntry = (n: string, i: number) => `  - {name: ${n}, mac: "52:54:00:30:00:0${i + 1}", ip: 10.3.0.${i + 11}/24}\n`;
export const INVENTORY = 'defaults: {profile: win}\nmachines:\n' + MACHINES.map(winEntry).join('');

/** unattended.test.ts's machines (profile winua): generalized, specialized, and one whose plan fails. */
export const UA_MACHINES = ['ua01', 'ua02', 'ua03'];
export const UA_SPEC = ['us01', 'us02', 'us03'];
/** A machine whose plan fails on Windows (a bond: unattend.xml has no settings for it), after its clone was restored. */
export const BONDED = 'ua04';
export const PRODUCT_KEY = 'VK7JG-NPHTM-C97JM-9MPGT-3V66T';
export const UA_PROFILE = `profile: winua
machineId: generate
site: {timezone: Europe/Berlin}
windows:
  computerName: "{{upper machine.name}}"
  productKey: ${PRODUCT_KEY}
  kms: {host: kms.corp.example, port: 1689}
  oobe:
    hideEula: true
    hideOnlineAccountScreens: true
    hideWirelessSetupInOOBE: true
    protectYourPC: 3
    administratorPassword: {passwordFile: "secrets/{{machine.name}}.admin"}
    accounts: [{name: ops, generate: true}]
    autoLogon: {user: ops, count: 1}
  domainJoin: {provisioningFile: "djoin/{name}.txt"}
`;

/** A djoin-like provisioning blob for a machine (base64 of a fake payload naming it), as djoin /savefile writes it: UTF-16LE with a BOM. */
export function fakeBlob(machine: string): string {
  return Buffer.from(`ghostprep test ODJ blob for ${machine} `.repeat(8)).toString('base64');
}
export function djoinFile(blob: string): Buffer {
  return Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(blob + '\r\n', 'utf16le')]);
}

/** A clone read back host-side: its hives copied out, its answer file, SMSCFG.INI's presence, inspect's text for it. */
export interface CloneReadBack {
  readonly system: string;
  readonly software: string;
  readonly unattend: string | null;
  readonly smscfg: boolean;
  readonly inspect: string;
}

export interface WindowsFleet {
  readonly images: WindowsImages;
  readonly work: string;
  readonly state: string;
  /** Clone directories: of the generalized base, of the specialized base. */
  readonly gen: string;
  readonly spec: string;
  readonly solo: string;
  readonly specBase: string;
  readonly blobs: Record<string, string>;
  readonly passwords: Record<string, string>;
  readonly capture: Run;
  readonly apply: Run;
  readonly deployGen: Run & { report: string };
  readonly deploySpec: Run & { report: string };
  readonly inspectText: Run;
  readonly inspectJson: Run;
  readonly auditText: Run;
  readonly auditJson: Run;
  /** The one plan run, last: pre and ua01 (untouched) with their changes, win01-03 and solo with none. */
  readonly plan: Run;
  /** Every clone (win01-03, solo, ua01-03, us01-03) by machine name; a clone that could not be read is in readErrors. */
  readonly clones: Record<string, CloneReadBack>;
  readonly readErrors: Record<string, string>;
  /** stdout and stderr of every run, and the deploy reports (the secrets scan reads them). */
  readonly outputs: string[];
}

let running: Promise<WindowsFleet> | undefined;

/** The scenario's results (run on first call). */
export function windowsFleet(): Promise<WindowsFleet> {
  running ??= runFleet();
  return running;
}

/** One plan's text for one machine: from its "=== name (" header to the next. */
export function planSection(stdout: string, machine: string): string {
  const start = stdout.indexOf(`=== ${machine} (`);
  if (start < 0) return '';
  const next = stdout.indexOf('\n=== ', start + 1);
  return stdout.slice(start, next < 0 ? undefined : next + 1);
}

async function runFleet(): Promise<WindowsFleet> {
  const images = await windowsImages();
  const work = tempDir('ghostprep-win-fleet-');
  const outputs: string[] = [];
  const run = (args: string[]): Run => {
    const r = ghostprep(args);
    outputs.push(r.stdout, r.stderr);
    return r;
  };
  const f = (name: string) => path.join(work, name);
  const state = f('state');
  const gen = f('gen');
  const spec = f('spec');
  const solo = f('solo.qcow2');
  const pre = f('pre.qcow2');
  const profiles = ['-p', f('win.yaml'), '-p', f('winua.yaml')];

  // inputs
  writeFileSync(f('win.yaml'), PROFILE);
  writeFileSync(f('winua.yaml'), UA_PROFILE);
  mkdirSync(f('secrets'), { recursive: true });
  mkdirSync(f('djoin'), { recursive: true });
  const blobs = Object.fromEntries([...UA_MACHINES, ...UA_SPEC, BONDED].map((m) => [m, fakeBlob(m)]));
  const passwords = Object.fromEntries(UA_MACHINES.map((m) => [m, `Adm-${m}-${Math.random().toString(36).slice(2, 10)}!`]));
  for (const m of [...UA_MACHINES, ...UA_SPEC, BONDED]) {
    writeFileSync(path.join(work, 'secrets', `${m}.admin`), (passwords[m] ?? `Spec-${m}-pw`) + '\n');
    writeFileSync(path.join(work, 'djoin', `${m}.txt`), djoinFile(blobs[m]!));
  }
  const ua = (names: string[]) => names.map((n) => `  - {name: ${n}, profile: winua}\n`).join('');
  const genBase = f('gen-base.qcow2');
  const specBase = f('spec-base.qcow2');
  copyFileSync(images.generalized, genBase);
  copyFileSync(images.specialized, specBase);
  for (const overlay of [solo, pre]) execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', specBase, overlay]);
  writeFileSync(f('single.yaml'), 'defaults: {profile: win}\nmachines:\n  - {name: solo, mac: "52:54:00:30:00:09", ip: 10.3.0.19/24}\n');
  writeFileSync(f('gen.yaml'), INVENTORY + ua(UA_MACHINES)
    + `  - {name: ${BONDED}, profile: winua, network: {version: 2, ethernets: {e1: {match: {macaddress: "52:54:00:00:00:41"}}}, bonds: {bond0: {interfaces: [e1], dhcp4: true}}}}\n`);
  writeFileSync(f('spec.yaml'), 'defaults: {profile: win}\nmachines:\n'
    + SPECIALIZED.map((n, i) => `  - {name: ${n}, mac: "52:54:00:30:00:1${i}", ip: 10.3.0.${i + 30}/24}\n`).join('') + ua(UA_SPEC));
  writeFileSync(f('all.yaml'), 'defaults: {profile: win}\nmachines:\n'
    + MACHINES.map((n, i) => winEntry(n, i).replace(/\}\n$/, `, target: ${path.join(gen, `${n}.qcow2`)}}\n`)).join('')
    + `  - {name: solo, mac: "52:54:00:30:00:09", ip: 10.3.0.19/24, target: ${solo}}\n`
    + `  - {name: pre, mac: "52:54:00:30:00:08", ip: 10.3.0.18/24, target: ${pre}}\n  - {name: ua01, profile: winua, target: ${genBase}}\n`);

  // before anything is written: capture's refusal
  const capture = run(['capture', '--target', specBase, '--library', f('lib'), '--name', 'win']);
  const apply = run(['apply', '-p', f('win.yaml'), '-i', f('single.yaml'), '--state', state, '--target', solo]);
  const deploy = (inventory: string, base: string, out: string, report: string): Run & { report: string } => {
    const r = run(['deploy', ...profiles, '-i', inventory, '--base', base, '--out', out, '--state', state, '--jobs', '1', '--report', report]);
    let text = '';
    try { text = readFileSync(report, 'utf8'); } catch { /* no report: the assertions on the run say why */ }
    outputs.push(text);
    return { ...r, report: text };
  };
  const deployGen = deploy(f('gen.yaml'), genBase, gen, f('gen-report.json'));
  const deploySpec = deploy(f('spec.yaml'), specBase, spec, f('spec-report.json'));

  // reading the clones
  const inspectTargets = ['--target', path.join(gen, 'win01.qcow2'), '--target', path.join(spec, 'spec01.qcow2'), '--jobs', '1'];
  const inspectText = run(['inspect', ...inspectTargets]);
  const inspectJson = run(['--json', 'inspect', ...inspectTargets]);
  const auditText = run(['audit', '--target', path.join(gen, 'win*.qcow2'), '--target', path.join(spec, 'spec*.qcow2'), '--jobs', '1']);
  const auditJson = run(['audit', '--target', path.join(gen, 'win*.qcow2'), '--json', '--jobs', '1']);
  const plan = run(['plan', ...profiles, '-i', f('all.yaml'), '--state', state, '--jobs', '1', '--detailed-exitcode']);

  const clones: Record<string, CloneReadBack> = {};
  const readErrors: Record<string, string> = {};
  const targets: Array<[string, string]> = [
    ...[...MACHINES, ...UA_MACHINES].map((m): [string, string] => [m, path.join(gen, `${m}.qcow2`)]),
    ...UA_SPEC.map((m): [string, string] => [m, path.join(spec, `${m}.qcow2`)]),
    ['solo', solo],
  ];
  for (const [machine, image] of targets) {
    const dir = path.join(work, 'read', machine);
    let guest;
    try { guest = await readNtfsClone(image, dir); } catch (err) { readErrors[machine] = (err as Error).message; continue; } // the cases name it
    const system = path.join(dir, 'SYSTEM');
    const software = path.join(dir, 'SOFTWARE');
    writeFileSync(system, (await guest.readFile('/Windows/System32/config/SYSTEM', { maxBytes: 1 << 26 }))!);
    writeFileSync(software, (await guest.readFile('/Windows/System32/config/SOFTWARE', { maxBytes: 1 << 26 }))!);
    clones[machine] = {
      system, software,
      unattend: (await guest.readFile('/Windows/Panther/unattend.xml'))?.toString('utf8') ?? null,
      smscfg: (await guest.lstat('/Windows/SMSCFG.INI')) !== null,
      inspect: formatIdentity(image, await inspectGuest(guest)),
    };
  }
  return { images, work, state, gen, spec, solo, specBase, blobs, passwords, capture, apply, deployGen, deploySpec, inspectText, inspectJson, auditText, auditJson, plan, clones, readErrors, outputs };
}
