/**
 * A Windows-like NTFS test image, built in the tests without any Microsoft
 * material: an MBR disk with one NTFS partition (host mkntfs), holding
 * Windows/System32/config/{SYSTEM,SOFTWARE} hives written by our regf
 * generator, a PE32+ header stub as cmd.exe (what libguestfs inspection
 * probes for the architecture), Panther/, Setup/State/State.ini, Users/.
 * Two flavours: `generalized` (ImageState IMAGE_STATE_GENERALIZE_RESEAL_TO_OOBE,
 * as sysprep /generalize leaves it) and `specialized` (IMAGE_STATE_COMPLETE).
 * The tree goes in with one guestfish run for both images (tar-in), which
 * then runs libguestfs's own inspection (inspect-os) on them and keeps what
 * it says next to the images (`inspection`); the qcow2 results are cached
 * under .cache/test-images by a hash of the recipe.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { guestfsEnv } from '../../src/backends/guestfs/env.js';
import { buildHive, type KeySpec } from '../helpers/hive-writer.js';
import { CACHE_DIR, tempDir } from '../helpers/images.js';

export type WindowsFlavour = 'generalized' | 'specialized';
const RECIPE_VERSION = 3;
const MiB = 1024 * 1024;
export const MASTER_NAME = 'WIN-MASTER';
/** The master's per-installation IDs every clone must stop sharing (src/windows/ids.ts). */
export const MASTER_MACHINE_GUID = '0f1e2d3c-4b5a-4697-8877-665544332211';
export const MASTER_WSUS_IDS = { SusClientId: '6b1f0c2e-7d4a-4c55-9e3b-2a1d0f9e8c7b', SusClientIdValidation: '0601', PingID: '5f2c3b4a-1111-4222-8333-944455566677', AccountDomainSid: 'S-1-5-21-1111111111-2222222222-3333333333' };

const sz = (value: string) => ({ type: 'sz' as const, value });
const dword = (value: number) => ({ type: 'dword' as const, value });

/**
 * What the setup records say per flavour. Generalized: SystemSetupInProgress 1 and windeploy as the
 * setup command line (Windows Setup runs at the next boot), SysprepStatus GeneralizationState 4;
 * specialized: a running system's 0 / 7 (CleanupState 2 in both).
 */
export interface SystemSetupOptions {
  /** SYSTEM\Setup\Status\SysprepStatus GeneralizationState; null: no SysprepStatus key. */
  generalizationState?: number | null;
  /** SYSTEM\Setup SystemSetupInProgress; null: value absent. */
  setupInProgress?: number | null;
  /** SYSTEM\Setup UnattendFile: an answer file Setup reads before Panther\unattend.xml. */
  unattendFile?: string;
}

export function systemHive(flavour: WindowsFlavour = 'specialized', opts: SystemSetupOptions = {}): Buffer {
  const generalized = flavour === 'generalized';
  const generalizationState = opts.generalizationState === undefined ? (generalized ? 4 : 7) : opts.generalizationState;
  const setupInProgress = opts.setupInProgress === undefined ? (generalized ? 1 : 0) : opts.setupInProgress;
  const controlSet: KeySpec = {
    subkeys: {
      Control: {
        subkeys: {
          ComputerName: { subkeys: { ComputerName: { values: { ComputerName: sz(MASTER_NAME) } }, ActiveComputerName: { values: { ComputerName: sz(MASTER_NAME) } } } },
          'Session Manager': { subkeys: { Environment: { values: { PROCESSOR_ARCHITECTURE: sz('AMD64'), OS: sz('Windows_NT') } } } },
        },
      },
      Services: { subkeys: { Tcpip: { subkeys: { Parameters: { values: { Hostname: sz('win-master'), 'NV Hostname': sz('win-master'), Domain: sz('') } } } } } },
    },
  };
  return buildHive({
    subkeys: {
      Select: { values: { Current: dword(1), Default: dword(1), LastKnownGood: dword(1), Failed: dword(0) } },
      ControlSet001: controlSet,
      MountedDevices: {},
      Setup: {
        values: {
          ...(setupInProgress !== null && { SystemSetupInProgress: dword(setupInProgress) }),
          ...(opts.unattendFile !== undefined && { UnattendFile: sz(opts.unattendFile) }),
          OOBEInProgress: dword(0), SetupType: dword(generalized ? 2 : 0), CmdLine: sz(generalized ? 'oobe\\windeploy.exe' : ''),
        },
        subkeys: generalizationState === null ? {} : { Status: { subkeys: { SysprepStatus: { values: { GeneralizationState: dword(generalizationState), CleanupState: dword(2) } } } } },
      },
    },
  }, { fileName: 'SYSTEM' });
}

/** imageState: the SOFTWARE ImageState value; null leaves it out (State.ini or SYSTEM then decide). */
export function softwareHive(flavour: WindowsFlavour, imageState: string | null = flavour === 'generalized' ? 'IMAGE_STATE_GENERALIZE_RESEAL_TO_OOBE' : 'IMAGE_STATE_COMPLETE'): Buffer {
  return buildHive({
    subkeys: {
      Microsoft: {
        subkeys: {
          'Windows NT': { subkeys: { CurrentVersion: { values: {
            ProductName: sz('Windows 10 Pro'), CurrentVersion: sz('6.3'), CurrentMajorVersionNumber: dword(10), CurrentMinorVersionNumber: dword(0),
            CurrentBuildNumber: sz('19045'), CurrentBuild: sz('19045'), EditionID: sz('Professional'), InstallationType: sz('Client'),
            SystemRoot: sz('C:\\Windows'), RegisteredOwner: sz('master owner'),
          } } } },
          Windows: { subkeys: { CurrentVersion: { subkeys: {
            Setup: { subkeys: { State: { values: imageState === null ? {} : { ImageState: sz(imageState) } } } },
            RunOnce: {},
            WindowsUpdate: { values: {
              SusClientId: sz(MASTER_WSUS_IDS.SusClientId), SusClientIdValidation: { type: 3, data: Buffer.from(MASTER_WSUS_IDS.SusClientIdValidation, 'hex') },
              PingID: sz(MASTER_WSUS_IDS.PingID), AccountDomainSid: sz(MASTER_WSUS_IDS.AccountDomainSid), LastWaitTimeout: sz('2026-01-01 00:00:00'),
            } },
          } } } },
          Cryptography: { values: { MachineGuid: sz(MASTER_MACHINE_GUID) } },
        },
      },
    },
  }, { fileName: 'SOFTWARE' });
}

/** A PE32+ x86-64 console header and nothing else: `file` says "PE32+ executable (console) x86-64, for MS Windows". */
export function peStub(): Buffer {
  const b = Buffer.alloc(512);
  b.write('MZ', 0, 'latin1');
  b.writeUInt32LE(0x40, 0x3c);
  b.write('PE\0\0', 0x40, 'latin1');
  b.writeUInt16LE(0x8664, 0x44); // machine
  b.writeUInt16LE(0xf0, 0x54); // size of optional header
  b.writeUInt16LE(0x22, 0x56); // characteristics
  b.writeUInt16LE(0x20b, 0x58); // PE32+
  b.writeUInt16LE(3, 0x58 + 68); // console subsystem
  return b;
}

async function stage(flavour: WindowsFlavour, dir: string): Promise<void> {
  const w = path.join(dir, 'Windows');
  for (const d of ['System32/config', 'System32/drivers/etc', 'Panther', 'Setup/State', 'Temp']) await fs.mkdir(path.join(w, d), { recursive: true });
  for (const d of ['Users/Public', 'Program Files', 'ProgramData']) await fs.mkdir(path.join(dir, d), { recursive: true });
  await fs.writeFile(path.join(w, 'System32/config/SYSTEM'), systemHive(flavour));
  await fs.writeFile(path.join(w, 'System32/config/SOFTWARE'), softwareHive(flavour));
  await fs.writeFile(path.join(w, 'System32/cmd.exe'), peStub());
  await fs.writeFile(path.join(w, 'System32/drivers/etc/hosts'), '127.0.0.1 localhost\r\n');
  const state = flavour === 'generalized' ? 'IMAGE_STATE_GENERALIZE_RESEAL_TO_OOBE' : 'IMAGE_STATE_COMPLETE';
  await fs.writeFile(path.join(w, 'Setup/State/State.ini'), `[State]\r\nImageState=${state}\r\n`);
  // the Configuration Manager client's identity file (windows-ids deletes it)
  await fs.writeFile(path.join(w, 'SMSCFG.INI'), '[Configuration - Client Properties]\r\nSMS Unique Identifier=GUID:01234567-89AB-CDEF-0123-456789ABCDEF\r\n');
}

async function exists(p: string): Promise<boolean> {
  return fs.stat(p).then(() => true, () => false);
}

/** An empty MBR disk with one NTFS partition (type 7) from the host's mkntfs. */
async function ntfsDisk(raw: string, work: string): Promise<void> {
  await fs.writeFile(raw, '');
  await fs.truncate(raw, 64 * MiB);
  await execa('sfdisk', ['-q', raw], { input: 'label: dos\nstart=2048, type=7, bootable\n' });
  const table = JSON.parse((await execa('sfdisk', ['-J', raw])).stdout) as { partitiontable: { partitions: { size: number }[] } };
  const sectors = table.partitiontable.partitions[0]!.size;
  const part = path.join(work, `part-${path.basename(raw)}`);
  await fs.writeFile(part, '');
  await fs.truncate(part, sectors * 512);
  await execa('mkntfs', ['-F', '-Q', '-q', '-L', 'Windows', '-p', '2048', '-H', '16', '-S', '63', part]);
  await execa('dd', [`if=${part}`, `of=${raw}`, 'bs=1M', 'seek=1', 'conv=notrunc', 'status=none']);
  await fs.rm(part);
}

export interface WindowsImages extends Record<WindowsFlavour, string> {
  /** guestfish's inspect-os and inspect-get-* output for both drives (generalized = /dev/sda1, specialized = /dev/sdb1). */
  readonly inspection: string;
}

let building: Promise<WindowsImages> | undefined;

/** Cached qcow2 images of both flavours (read-only: make overlays). */
export function windowsImages(): Promise<WindowsImages> {
  building ??= build();
  return building;
}

const INSPECT = ['type', 'distro', 'product-name', 'major-version', 'minor-version', 'windows-systemroot', 'hostname', 'arch'];

async function build(): Promise<WindowsImages> {
  const flavours: WindowsFlavour[] = ['generalized', 'specialized'];
  const hash = createHash('sha256').update(`windows\0${RECIPE_VERSION}\0`).update(systemHive('generalized')).update(systemHive('specialized')).update(softwareHive('generalized')).update(softwareHive('specialized')).update(peStub()).digest('hex').slice(0, 16);
  const out = Object.fromEntries(flavours.map((f) => [f, path.join(CACHE_DIR, `windows-${f}-${hash}.qcow2`)])) as Record<WindowsFlavour, string>;
  const sidecar = path.join(CACHE_DIR, `windows-${hash}.inspect.txt`);
  if ((await Promise.all([...flavours.map((f) => exists(out[f])), exists(sidecar)])).every(Boolean)) return { ...out, inspection: await fs.readFile(sidecar, 'utf8') };
  await fs.mkdir(CACHE_DIR, { recursive: true });
  const work = await tempDir('ghostprep-win-');
  try {
    const script = [];
    for (const f of flavours) {
      const tree = path.join(work, `tree-${f}`);
      await stage(f, tree);
      await execa('tar', ['--numeric-owner', '-C', tree, '-cf', path.join(work, `${f}.tar`), '.']);
      await ntfsDisk(path.join(work, `${f}.raw`), work);
      script.push(`add-drive ${path.join(work, `${f}.raw`)} format:raw`);
    }
    script.push('run');
    for (const [i, f] of flavours.entries()) {
      script.push(`mount /dev/sd${String.fromCharCode(97 + i)}1 /`, `tar-in ${path.join(work, `${f}.tar`)} /`, 'umount-all');
    }
    script.push('echo ==inspect-os==', '-inspect-os');
    for (const dev of ['/dev/sda1', '/dev/sdb1']) for (const what of INSPECT) script.push(`echo ==${dev} ${what}==`, `-inspect-get-${what} ${dev}`);
    script.push('exit');
    const r = await execa('guestfish', [], { input: script.join('\n') + '\n', env: guestfsEnv(), extendEnv: false, all: true });
    await fs.writeFile(sidecar, r.all ?? r.stdout);
    for (const f of flavours) {
      const tmp = `${out[f]}.tmp-${process.pid}`;
      await execa('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', path.join(work, `${f}.raw`), tmp]);
      await fs.chmod(tmp, 0o444);
      await fs.rename(tmp, out[f]);
    }
    return { ...out, inspection: await fs.readFile(sidecar, 'utf8') };
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}
