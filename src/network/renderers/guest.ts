/**
 * What the renderer records share for reading a guest: the probe behind each
 * record's `detect`, the file readers (INI, KEY=value) and change builders
 * behind each record's `stale`, and the claims of a model (the names, MACs
 * and paths the new configuration takes) that every stale rule compares with.
 */
import path from 'node:path/posix';
import type { GuestReader } from '../../core/backend.js';
import type { DeleteChange, WriteChange } from '../../core/file-change.js';
import { globMatcher, hasGlobMagic } from '../../util/glob.js';
import type { Claims, Detection, NetworkModel } from '../../core/network.js';
import { HEADER } from './common.js';

/** The `source` of every change the network module plans. */
export const SOURCE = 'network';

// ------------------------------------------------------------ detection

export const SYSTEMD_DIR = '/etc/systemd/system';

/** Records the paths a detection looks at, so a failed selection can list them all. */
export class Probe {
  readonly searched: string[] = [];
  constructor(private readonly reader: GuestReader) {}

  async exists(p: string): Promise<boolean> {
    this.searched.push(p);
    return (await this.reader.lstat(p)) !== null;
  }

  async firstExisting(paths: readonly string[]): Promise<string | undefined> {
    for (const p of paths) {
      this.searched.push(p);
      if (await this.reader.lstat(p)) return p;
    }
    return undefined;
  }

  /**
   * Path of an enablement link for one of `units`, if any: a symlink in
   * /etc/systemd/system/*.wants/ (or the OpenRC runlevel link): an installed
   * but disabled service reads nothing.
   */
  async enabled(units: readonly string[], openrc?: string): Promise<string | undefined> {
    this.searched.push(`${SYSTEMD_DIR}/*.wants/{${units.join(',')}}`);
    const dirs = ((await this.reader.readdir(SYSTEMD_DIR)) ?? []).filter((d) => d.endsWith('.wants'));
    for (const dir of dirs) {
      for (const unit of units) {
        const p = `${SYSTEMD_DIR}/${dir}/${unit}`;
        if (await this.reader.lstat(p)) return p;
      }
    }
    return openrc ? this.firstExisting([`/etc/runlevels/default/${openrc}`, `/etc/runlevels/boot/${openrc}`]) : undefined;
  }

  found(reason: string | undefined): Detection {
    return { reason, searched: [...this.searched] };
  }
}

// ------------------------------------------------------------ claims

/**
 * The one rule every format's stale check applies to a master's name match
 * (netplan `match.name`, networkd `Name=`, NetworkManager `interface-name`
 * and `[match] interface-name`, ENI `iface`/`mapping`, ifcfg `DEVICE=`): the
 * claimed interfaces it covers, as a literal name or as an fnmatch(3) glob,
 * sorted. A master definition that covers one of ours would configure that
 * card too (netplan and networkd take the first match; NetworkManager may
 * activate either), so it goes. A leading `!` (negation) covers nothing here.
 */
export function namesTaken(pattern: string, c: Pick<Claims, 'names'>): string[] {
  if (pattern.startsWith('!')) return [];
  if (c.names.has(pattern)) return [pattern];
  if (!hasGlobMagic(pattern)) return [];
  const matches = globMatcher(pattern, 'fnmatch');
  return [...c.names].filter((n) => matches(n)).sort();
}

/** Why a master's name pattern fights the configuration ("matching en* also takes eno1"), or undefined. */
export function nameConflict(pattern: string, c: Pick<Claims, 'names'>): string | undefined {
  const hit = namesTaken(pattern, c)[0];
  if (hit === undefined) return undefined;
  return hit === pattern ? `for interface ${hit}` : `matching ${pattern} also takes interface ${hit}`;
}

export function claimsOf(model: NetworkModel, ours: Iterable<string>, machineId?: string): Claims {
  return {
    ...(machineId !== undefined ? { machineId } : {}),
    names: new Set(model.interfaces.map((i) => i.name).filter((n): n is string => n !== undefined)),
    macs: new Set(model.interfaces.map((i) => i.match?.macaddress).filter((m): m is string => m !== undefined)),
    ours: new Set(ours),
    renamedByMac: model.interfaces.filter((i) => i.kind === 'ethernet' && i.match?.macaddress && i.setName).length,
  };
}

// ------------------------------------------------------------ changes

export const del = (p: string, reason: string): DeleteChange => ({ op: 'delete', path: p, source: SOURCE, reason });
export const write = (p: string, content: string, mode: number, reason: string): WriteChange => ({
  op: 'write', path: p, content: Buffer.from(content, 'utf8'), mode, uid: 0, gid: 0, source: SOURCE, reason,
});

// ------------------------------------------------------------ reading files

const MARK = `# ${HEADER}`;
/** Whether a file is one ghostprep wrote (every rendered file opens with the header). */
export const isOurs = (text: string): boolean => text.startsWith(MARK);

/** A regular file's text; null for anything else (missing, directory, symlink). */
export async function readText(reader: GuestReader, p: string): Promise<string | null> {
  const st = await reader.lstat(p);
  if (!st || st.type !== 'file') return null;
  return (await reader.readFile(p))?.toString('utf8') ?? null;
}

export interface GuestText {
  readonly path: string;
  readonly text: string;
}

/** The regular files of `dir` whose names pass `filter`, with their text. */
export async function listFiles(reader: GuestReader, dir: string, filter: (name: string) => boolean): Promise<GuestText[]> {
  const out: GuestText[] = [];
  for (const name of (await reader.readdir(dir)) ?? []) {
    if (!filter(name)) continue;
    const p = path.join(dir, name);
    const text = await readText(reader, p);
    if (text !== null) out.push({ path: p, text });
  }
  return out;
}

export type Ini = Map<string, Map<string, string[]>>;

/** Minimal INI reader (NetworkManager keyfiles, systemd units): section -> key -> values. */
export function parseIni(text: string): Ini {
  const out: Ini = new Map();
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const sec = /^\[(.+)\]$/.exec(line);
    if (sec) { section = sec[1]!; continue; }
    const eq = line.indexOf('=');
    if (eq < 0) continue;
    const keys = out.get(section) ?? new Map<string, string[]>();
    out.set(section, keys);
    const key = line.slice(0, eq).trim();
    keys.set(key, [...(keys.get(key) ?? []), line.slice(eq + 1).trim()]);
  }
  return out;
}

/** The last value of a key (later assignments win), undefined when unset or empty. */
export const iniGet = (ini: Ini, section: string, key: string): string | undefined => ini.get(section)?.get(key)?.at(-1) || undefined;

/** Shell-like KEY=value (ifcfg), quotes removed. */
export function parseKv(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(raw);
    if (!m) continue;
    let v = m[2]!.trim();
    if (v.length >= 2 && (v[0] === '"' || v[0] === "'") && v.endsWith(v[0]!)) v = v.slice(1, -1);
    out.set(m[1]!, v);
  }
  return out;
}
