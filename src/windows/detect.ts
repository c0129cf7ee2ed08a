/**
 * Windows guests: where the system root is, what the registry says about
 * the product, the computer name and whether the installation was
 * generalized (sysprep /generalize) and waits for its specialize pass.
 *
 * Generalized: Windows Setup records the image state in
 * HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Setup\State, value
 * ImageState (also %WINDIR%\Setup\State\State.ini): after
 * `sysprep /generalize` it is IMAGE_STATE_GENERALIZE_RESEAL_TO_OOBE (or
 * _TO_AUDIT); a running, specialized system says IMAGE_STATE_COMPLETE.
 * The SYSTEM hive says it too, in two more places read as a fallback and a
 * cross-check: HKLM\SYSTEM\Setup\Status\SysprepStatus GeneralizationState
 * (4 after `sysprep /generalize`: windeploy.exe logs "Found generalization
 * state [0x4] ... launching setup.exe" on the first boot of such an image;
 * 7 once specialize has run, the value of every running system) and
 * HKLM\SYSTEM\Setup SystemSetupInProgress / OOBEInProgress (1: Windows
 * Setup runs at the next boot, which is what reads unattend.xml; 0: a
 * normal boot). The sources disagreeing is reported, not resolved silently.
 * Microsoft supports duplicating a Windows installation only once it is
 * generalized: a clone of a specialized one keeps its machine SID, WSUS and
 * KMS client IDs, MSDTC CID and the like.
 */
import path from 'node:path';
import type { GuestReader } from '../backends/backend.js';
import type { Distro } from '../distro/detect.js';
import { decodeValue } from './regf.js';
import { readHive } from './hive.js';

const posix = path.posix;

export interface WindowsInfo {
  /** Guest path of the system root as it is spelled on disk ("/Windows"). */
  readonly systemRoot: string;
  readonly systemHive: string;
  readonly softwareHive: string;
  readonly productName: string;
  /** "10.0", "6.3"… */
  readonly version: string;
  readonly build: string;
  readonly editionId: string;
  readonly installationType: string;
  /** amd64, x86 or arm64 (the processorArchitecture of unattend components). */
  readonly architecture: string;
  /** The ControlSet00N key that Select\Current names. */
  readonly controlSet: string;
  readonly computerName: string | null;
  readonly activeComputerName: string | null;
  readonly hostname: string | null;
  readonly nvHostname: string | null;
  readonly imageState: string | null;
  /** SYSTEM\Setup\Status\SysprepStatus GeneralizationState (4 generalized, 7 specialized), when present. */
  readonly generalizationState: number | null;
  /** SYSTEM\Setup SystemSetupInProgress: Windows Setup runs at the next boot (null: value absent). */
  readonly setupInProgress: boolean | null;
  /** SYSTEM\Setup OOBEInProgress (null: value absent). */
  readonly oobeInProgress: boolean | null;
  readonly generalized: boolean;
  /** Where `generalized` comes from: the first of these present. */
  readonly generalizedFrom: 'ImageState' | 'State.ini' | 'GeneralizationState' | null;
  /** The registry's setup records disagreeing with each other, for `warn`. */
  readonly stateWarnings: readonly string[];
}

const GENERALIZED_STATE = 4;
const SPECIALIZED_STATE = 7;

/** generalized or not from an ImageState; undefined for states that say neither (IMAGE_STATE_UNDEPLOYABLE). */
function imageStateVerdict(state: string): boolean | undefined {
  if (/^IMAGE_STATE_GENERALIZE_RESEAL_TO_/.test(state)) return true;
  if (/^IMAGE_STATE_(COMPLETE|SPECIALIZE_RESEAL_TO_)/.test(state)) return false;
  return undefined;
}

/** generalized or not from a GeneralizationState, the same way. */
function generalizationVerdict(state: number): boolean | undefined {
  return state === GENERALIZED_STATE ? true : state === SPECIALIZED_STATE ? false : undefined;
}

export interface SetupRecords {
  readonly imageState: string | null;
  readonly imageStateFrom: 'ImageState' | 'State.ini' | null;
  readonly generalizationState: number | null;
  readonly setupInProgress: boolean | null;
}

/** The generalized verdict from the setup records, where it came from, and their disagreements (pure, for tests). */
export function judgeGeneralized(r: SetupRecords): { generalized: boolean; from: WindowsInfo['generalizedFrom']; warnings: string[] } {
  const warnings: string[] = [];
  const byImage = r.imageState !== null ? imageStateVerdict(r.imageState) : undefined;
  const bySysprep = r.generalizationState !== null ? generalizationVerdict(r.generalizationState) : undefined;
  const imageWhere = r.imageStateFrom === 'State.ini' ? 'Setup\\State\\State.ini ImageState' : 'SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Setup\\State ImageState';
  const sysprepWhere = 'SYSTEM\\Setup\\Status\\SysprepStatus GeneralizationState';
  let generalized: boolean;
  let from: WindowsInfo['generalizedFrom'];
  if (byImage !== undefined) {
    generalized = byImage;
    from = r.imageStateFrom;
    if (bySysprep !== undefined && bySysprep !== byImage) {
      warnings.push(`Windows setup records disagree: ${imageWhere} is ${r.imageState} (${byImage ? 'generalized' : 'specialized'}) but ${sysprepWhere} is ${r.generalizationState} (${bySysprep ? 'generalized' : 'specialized'}); going by ImageState`);
    }
  } else if (bySysprep !== undefined) {
    generalized = bySysprep;
    from = 'GeneralizationState';
  } else {
    generalized = false;
    from = null;
  }
  if (generalized && r.setupInProgress === false) {
    warnings.push(`the image is generalized (${from === 'GeneralizationState' ? sysprepWhere : imageWhere}) but SYSTEM\\Setup SystemSetupInProgress is 0: Windows would boot normally and skip the specialize pass that reads unattend.xml`);
  }
  return { generalized, from, warnings };
}

/** Reasons Microsoft gives against duplicating a specialized (not generalized) installation. */
export const NOT_GENERALIZED_RISK =
  'the master Windows installation is not generalized (sysprep /generalize was not run): Microsoft does not support cloning it as is; ' +
  'every clone keeps the same machine SID and other per-installation IDs (WSUS/SCCM client IDs, KMS CMID, MSDTC), which breaks domain trust, update management and activation. ' +
  'ghostprep sets the computer name in the registry, but only sysprep makes each clone unique: generalize the master (sysprep /generalize /oobe /shutdown) and capture it again';

/** A directory entry of `dir` matching `name` case-insensitively (NTFS is case-insensitive, ntfs-3g is not). */
export async function findNoCase(guest: GuestReader, dir: string, name: string): Promise<string | undefined> {
  const entries = await guest.readdir(dir).catch(() => null);
  const hit = entries?.find((e) => e.toLowerCase() === name.toLowerCase());
  return hit === undefined ? undefined : posix.join(dir, hit);
}

export async function findPathNoCase(guest: GuestReader, parts: readonly string[], from = '/'): Promise<string | undefined> {
  let cur = from;
  for (const p of parts) {
    const next = await findNoCase(guest, cur, p);
    if (!next) return undefined;
    cur = next;
  }
  return cur;
}

const SYSTEM_ROOTS = ['Windows', 'WINNT', 'Win32', 'Win'];

/** The system root of a Windows guest mounted at /: a directory with System32/config/SYSTEM and SOFTWARE. */
export async function findSystemRoot(guest: GuestReader): Promise<{ root: string; system: string; software: string } | undefined> {
  for (const name of SYSTEM_ROOTS) {
    const root = await findNoCase(guest, '/', name);
    if (!root || (await guest.stat(root))?.type !== 'dir') continue;
    const config = await findPathNoCase(guest, ['System32', 'config'], root);
    if (!config) continue;
    const system = await findNoCase(guest, config, 'SYSTEM');
    const software = await findNoCase(guest, config, 'SOFTWARE');
    if (system && software && (await guest.stat(system))?.type === 'file' && (await guest.stat(software))?.type === 'file') return { root, system, software };
  }
  return undefined;
}

const cache = new WeakMap<GuestReader, Promise<WindowsInfo | undefined>>();

/** Windows facts of the guest, or undefined when it is not Windows. Cached per guest object. */
export function detectWindows(guest: GuestReader): Promise<WindowsInfo | undefined> {
  let p = cache.get(guest);
  if (!p) cache.set(guest, (p = readWindows(guest)));
  return p;
}

function str(v: ReturnType<typeof decodeValue>): string | null {
  if (!v) return null;
  if (v.type === 'sz' || v.type === 'expand_sz') return v.value;
  if (v.type === 'dword') return String(v.value);
  return null;
}

async function readWindows(guest: GuestReader): Promise<WindowsInfo | undefined> {
  const found = await findSystemRoot(guest);
  if (!found) return undefined;
  const software = await readHive(guest, found.software);
  const system = await readHive(guest, found.system);
  if (!software || !system) return undefined;
  const sw = (key: string, name: string): string | null => {
    const raw = software.value(key, name);
    return raw ? str(decodeValue(raw)) : null;
  };
  const cv = 'Microsoft\\Windows NT\\CurrentVersion';
  const major = sw(cv, 'CurrentMajorVersionNumber');
  const minor = sw(cv, 'CurrentMinorVersionNumber');
  const version = major !== null ? `${major}.${minor ?? '0'}` : (sw(cv, 'CurrentVersion') ?? '');
  const currentRaw = system.value('Select', 'Current');
  const current = currentRaw ? decodeValue(currentRaw) : undefined;
  const n = current?.type === 'dword' && current.value > 0 && current.value < 1000 ? current.value : 1;
  const controlSet = `ControlSet${String(n).padStart(3, '0')}`;
  const sys = (key: string, name: string): string | null => {
    const raw = system.value(`${controlSet}\\${key}`, name);
    return raw ? str(decodeValue(raw)) : null;
  };
  const regImageState = sw('Microsoft\\Windows\\CurrentVersion\\Setup\\State', 'ImageState');
  const imageState = regImageState ?? (await stateIni(guest, found.root));
  const dword = (key: string, name: string): number | null => {
    const raw = system.value(key, name);
    const v = raw ? decodeValue(raw) : undefined;
    return v?.type === 'dword' ? v.value : null;
  };
  const generalizationState = dword('Setup\\Status\\SysprepStatus', 'GeneralizationState');
  const flag = (v: number | null): boolean | null => (v === null ? null : v !== 0);
  const setupInProgress = flag(dword('Setup', 'SystemSetupInProgress'));
  const oobeInProgress = flag(dword('Setup', 'OOBEInProgress'));
  const verdict = judgeGeneralized({
    imageState, imageStateFrom: regImageState !== null ? 'ImageState' : imageState !== null ? 'State.ini' : null,
    generalizationState, setupInProgress,
  });
  const arch = (sys('Control\\Session Manager\\Environment', 'PROCESSOR_ARCHITECTURE') ?? 'AMD64').toLowerCase();
  return {
    systemRoot: found.root,
    systemHive: found.system,
    softwareHive: found.software,
    productName: sw(cv, 'ProductName') ?? 'Windows',
    version,
    build: sw(cv, 'CurrentBuildNumber') ?? sw(cv, 'CurrentBuild') ?? '',
    editionId: sw(cv, 'EditionID') ?? '',
    installationType: sw(cv, 'InstallationType') ?? '',
    architecture: arch === 'x86' ? 'x86' : arch === 'arm64' ? 'arm64' : 'amd64',
    controlSet,
    computerName: sys('Control\\ComputerName\\ComputerName', 'ComputerName'),
    activeComputerName: sys('Control\\ComputerName\\ActiveComputerName', 'ComputerName'),
    hostname: sys('Services\\Tcpip\\Parameters', 'Hostname'),
    nvHostname: sys('Services\\Tcpip\\Parameters', 'NV Hostname'),
    imageState,
    generalizationState,
    setupInProgress,
    oobeInProgress,
    generalized: verdict.generalized,
    generalizedFrom: verdict.from,
    stateWarnings: verdict.warnings,
  };
}

/** ImageState from %WINDIR%\Setup\State\State.ini, the file form of the same record. */
async function stateIni(guest: GuestReader, root: string): Promise<string | null> {
  const file = await findPathNoCase(guest, ['Setup', 'State', 'State.ini'], root);
  if (!file) return null;
  const text = (await guest.readFile(file, { maxBytes: 64 * 1024 }).catch(() => null))?.toString('utf8').replace(/\0/g, '') ?? '';
  return /^\s*ImageState\s*=\s*(\S+)/im.exec(text)?.[1] ?? null;
}

/** The Distro record of a Windows guest (family "windows"). */
export function windowsDistro(info: WindowsInfo): Distro {
  const major = /^(\d+)/.exec(info.version);
  return { id: 'windows', idLike: [], versionId: info.version, name: info.productName, family: 'windows', major: major ? Number(major[1]) : undefined };
}

/** Guest path of a file under the system root ("Panther/unattend.xml"), keeping existing directories' spelling. */
export async function underSystemRoot(guest: GuestReader, info: WindowsInfo, rel: string): Promise<string> {
  let cur = info.systemRoot;
  const parts = rel.split('/');
  for (const [i, p] of parts.entries()) {
    const hit = await findNoCase(guest, cur, p);
    if (!hit) return posix.join(cur, ...parts.slice(i));
    cur = hit;
  }
  return cur;
}
