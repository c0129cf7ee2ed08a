/**
 * A read-only NTFS reader over a byte reader, for audit's host-side path:
 * the registry hives and setup records of a Windows guest (what
 * src/windows/detect.ts reads), without an appliance.
 *
 * Follows what Windows, mkntfs and ntfs-3g write: MFT records with their
 * update-sequence fixups, resident and non-resident attributes (runlists,
 * sparse runs, data past the initialized size read as zeros), directories
 * as $I30 B-trees walked from $INDEX_ROOT through $INDEX_ALLOCATION.
 * Names match exactly, as ntfs-3g's do (callers look names up
 * case-insensitively, src/distro/windows-root.ts). A volume marked dirty,
 * a file whose attributes spill into other records ($ATTRIBUTE_LIST),
 * compressed or encrypted data, following a reparse point (junction or
 * symlink), and anything malformed throw NtfsUnsupported: the caller reads
 * that guest in an appliance instead.
 */
import type { FileStat, GuestReader, ReadOptions } from '../core/backend.js';
import { DEFAULT_MAX_READ } from '../core/backend.js';
import { GuestError } from '../util/errors.js';
import { readPartitionTable } from '../backends/guestfs/lvm-probe.js';
import { findSystemRoot } from '../distro/windows-root.js';
import type { DiskIdentity, Reader } from './headers.js';

export class NtfsUnsupported extends Error {}

const fail = (why: string): never => { throw new NtfsUnsupported(why); };

const AT_STANDARD_INFORMATION = 0x10;
const AT_ATTRIBUTE_LIST = 0x20;
const AT_FILE_NAME = 0x30;
const AT_VOLUME_INFORMATION = 0x70;
const AT_DATA = 0x80;
const AT_INDEX_ROOT = 0x90;
const AT_INDEX_ALLOCATION = 0xa0;
const AT_END = 0xffffffff;
const FILE_ATTRIBUTE_REPARSE_POINT = 0x400;
const ATTR_COMPRESSED = 0x0001;
const ATTR_ENCRYPTED = 0x4000;
const VOLUME_IS_DIRTY = 0x0001;
/** MFT record numbers of $MFT and $Volume, and of the root directory. */
const MFT_RECORD = 0;
const VOLUME_RECORD = 3;
const ROOT_RECORD = 5;
const MAX_FILE = 64 * 1024 * 1024;
const MAX_DIR_ENTRIES = 100_000;
const MAX_DEPTH = 32;

interface Run { readonly lcn: number | null; readonly length: number }

interface Attribute {
  readonly type: number;
  readonly name: string;
  readonly flags: number;
  readonly resident: Buffer | null;
  readonly runs: readonly Run[];
  readonly dataSize: number;
  readonly initializedSize: number;
}

export interface NtfsNode {
  readonly record: number;
  readonly type: 'file' | 'dir' | 'symlink';
  readonly size: number;
  readonly attributes: readonly Attribute[];
}

export class NtfsFs {
  private readonly nodes = new Map<number, Promise<NtfsNode>>();
  private readonly dirs = new Map<number, Promise<Map<string, number>>>();

  private constructor(
    private readonly read: Reader,
    private readonly offset: number,
    private readonly clusterSize: number,
    private readonly recordSize: number,
    private readonly indexBlockSize: number,
    private readonly mftRuns: readonly Run[],
  ) {}

  /** Open the NTFS volume starting at `offset`; undefined when it is no NTFS volume. */
  static async open(read: Reader, offset: number): Promise<NtfsFs | undefined> {
    const boot = await read(offset, 512);
    if (boot.length < 512 || boot.toString('latin1', 3, 11) !== 'NTFS    ') return undefined;
    const sectorSize = boot.readUInt16LE(0x0b);
    const spc = boot[0x0d]!;
    const sectorsPerCluster = spc > 0x80 ? 2 ** (256 - spc) : spc;
    const clusterSize = sectorSize * sectorsPerCluster;
    const sized = (v: number) => (v >= 0x80 ? 2 ** (256 - v) : v * clusterSize);
    const recordSize = sized(boot[0x40]!);
    const indexBlockSize = sized(boot[0x44]!);
    if (![512, 1024, 2048, 4096].includes(sectorSize) || !clusterSize || clusterSize > 2 * 1024 * 1024 || recordSize < 512 || recordSize > 65536 || indexBlockSize < 512 || indexBlockSize > 65536) fail('unusual NTFS geometry');
    const mftLcn = Number(boot.readBigUInt64LE(0x30));
    // record 0 ($MFT) first, from the boot sector's location; then every record through $MFT's own runlist
    const first = new NtfsFs(read, offset, clusterSize, recordSize, indexBlockSize, [{ lcn: mftLcn, length: Math.ceil(recordSize / clusterSize) * 4 }]);
    const mft = await first.node(MFT_RECORD);
    const data = mft.attributes.find((a) => a.type === AT_DATA && a.name === '');
    if (!data || data.resident) fail('$MFT has no non-resident $DATA');
    const fs = new NtfsFs(read, offset, clusterSize, recordSize, indexBlockSize, data!.runs);
    const volume = (await fs.node(VOLUME_RECORD)).attributes.find((a) => a.type === AT_VOLUME_INFORMATION)?.resident;
    if (!volume || volume.length < 12) fail('$Volume has no volume information');
    if (volume!.readUInt16LE(10) & VOLUME_IS_DIRTY) fail('the volume is marked dirty');
    return fs;
  }

  get root(): number { return ROOT_RECORD; }

  /** `length` bytes of a runlist's stream from byte `from` (sparse runs read as zeros). */
  private async readRuns(runs: readonly Run[], from: number, length: number): Promise<Buffer> {
    const out = Buffer.alloc(length);
    let vcnStart = 0;
    for (const run of runs) {
      const runStart = vcnStart * this.clusterSize;
      const runEnd = (vcnStart + run.length) * this.clusterSize;
      vcnStart += run.length;
      const a = Math.max(from, runStart);
      const b = Math.min(from + length, runEnd);
      if (a >= b) continue;
      if (run.lcn === null) continue;
      const chunk = await this.read(this.offset + run.lcn * this.clusterSize + (a - runStart), b - a);
      if (chunk.length !== b - a) fail('a run reaches past the end of the disk');
      chunk.copy(out, a - from);
    }
    return out;
  }

  /** Apply the update-sequence fixups of a FILE or INDX block in place. */
  private static fixup(b: Buffer, magic: string): void {
    if (b.toString('latin1', 0, 4) !== magic) fail(`not a ${magic} block`);
    const usaOffset = b.readUInt16LE(4);
    const usaCount = b.readUInt16LE(6);
    if (usaCount < 1 || usaOffset + usaCount * 2 > b.length || (usaCount - 1) * 512 > b.length) fail(`a ${magic} block with a bad update sequence`);
    const usn = b.readUInt16LE(usaOffset);
    for (let i = 1; i < usaCount; i++) {
      const end = i * 512 - 2;
      if (b.readUInt16LE(end) !== usn) fail(`a torn ${magic} block`);
      b.writeUInt16LE(b.readUInt16LE(usaOffset + i * 2), end);
    }
  }

  /** The MFT record `n`, parsed. */
  node(n: number): Promise<NtfsNode> {
    let p = this.nodes.get(n);
    if (!p) { p = this.loadNode(n); this.nodes.set(n, p); }
    return p;
  }

  private async loadNode(n: number): Promise<NtfsNode> {
    if (!Number.isSafeInteger(n) || n < 0) fail('a bad MFT reference');
    const b = await this.readRuns(this.mftRuns, n * this.recordSize, this.recordSize);
    NtfsFs.fixup(b, 'FILE');
    const flags = b.readUInt16LE(0x16);
    if (!(flags & 0x01)) fail(`MFT record ${n} is not in use`);
    const attributes: Attribute[] = [];
    let at = b.readUInt16LE(0x14);
    while (at + 8 <= b.length) {
      const type = b.readUInt32LE(at);
      if (type === AT_END) break;
      const len = b.readUInt32LE(at + 4);
      if (len < 24 || at + len > b.length) fail(`MFT record ${n}: a bad attribute length`);
      const a = b.subarray(at, at + len);
      at += len;
      if (type === AT_ATTRIBUTE_LIST) fail(`MFT record ${n} has an attribute list`);
      const nameLength = a[9]!;
      const nameOffset = a.readUInt16LE(10);
      if (nameOffset + nameLength * 2 > len) fail(`MFT record ${n}: a bad attribute name`);
      const name = a.toString('utf16le', nameOffset, nameOffset + nameLength * 2);
      const attrFlags = a.readUInt16LE(12);
      if (a[8] === 0) {
        const vlen = a.readUInt32LE(16);
        const voff = a.readUInt16LE(20);
        if (voff + vlen > len) fail(`MFT record ${n}: a bad resident value`);
        const value = Buffer.from(a.subarray(voff, voff + vlen));
        attributes.push({ type, name, flags: attrFlags, resident: value, runs: [], dataSize: vlen, initializedSize: vlen });
      } else {
        if (len < 64) fail(`MFT record ${n}: a short non-resident attribute`);
        if (a.readBigUInt64LE(16) !== 0n) fail(`MFT record ${n}: an attribute extent that does not start at 0`);
        const dataSize = Number(a.readBigUInt64LE(48));
        const initializedSize = Number(a.readBigUInt64LE(56));
        attributes.push({ type, name, flags: attrFlags, resident: null, runs: NtfsFs.runlist(a, a.readUInt16LE(32)), dataSize, initializedSize: Math.min(initializedSize, dataSize) });
      }
    }
    const si = attributes.find((a) => a.type === AT_STANDARD_INFORMATION)?.resident;
    const reparse = si && si.length >= 36 ? (si.readUInt32LE(32) & FILE_ATTRIBUTE_REPARSE_POINT) !== 0 : false;
    const isDir = (flags & 0x02) !== 0;
    const data = attributes.find((a) => a.type === AT_DATA && a.name === '');
    return { record: n, type: reparse ? 'symlink' : isDir ? 'dir' : 'file', size: isDir ? 0 : (data?.dataSize ?? 0), attributes };
  }

  /** A non-resident attribute's runlist: (length, signed LCN delta) pairs; no LCN bytes is a sparse run. */
  private static runlist(a: Buffer, from: number): Run[] {
    const runs: Run[] = [];
    let at = from;
    let lcn = 0;
    while (at < a.length && a[at] !== 0) {
      const header = a[at]!;
      const lenBytes = header & 0x0f;
      const offBytes = header >> 4;
      if (!lenBytes || lenBytes > 8 || offBytes > 8 || at + 1 + lenBytes + offBytes > a.length) fail('a bad runlist');
      const length = Number(a.readUIntLE(at + 1, Math.min(lenBytes, 6)));
      if (lenBytes > 6 && a.subarray(at + 7, at + 1 + lenBytes).some((x) => x !== 0)) fail('a run too long');
      at += 1 + lenBytes;
      if (offBytes) {
        let delta = 0n;
        for (let i = offBytes - 1; i >= 0; i--) delta = (delta << 8n) | BigInt(a[at + i]!);
        if (a[at + offBytes - 1]! & 0x80) delta -= 1n << BigInt(offBytes * 8);
        lcn += Number(delta);
        if (lcn < 0 || !Number.isSafeInteger(lcn)) fail('a run before the start of the volume');
        runs.push({ lcn, length });
      } else runs.push({ lcn: null, length });
      at += offBytes;
    }
    return runs;
  }

  /** The unnamed data stream of a file, at most `max` bytes (larger files are refused by the caller). */
  async data(node: NtfsNode, max = MAX_FILE): Promise<Buffer> {
    const a = node.attributes.find((x) => x.type === AT_DATA && x.name === '');
    if (!a) return Buffer.alloc(0);
    if (a.flags & (ATTR_COMPRESSED | ATTR_ENCRYPTED)) fail('compressed or encrypted data');
    if (a.resident) return a.resident.subarray(0, max);
    const size = Math.min(a.dataSize, max);
    const out = Buffer.alloc(size);
    (await this.readRuns(a.runs, 0, Math.min(a.initializedSize, size))).copy(out);
    return out;
  }

  /** A directory's entries: long names (Win32 and POSIX namespaces) to MFT record numbers. */
  entries(node: NtfsNode): Promise<Map<string, number>> {
    let p = this.dirs.get(node.record);
    if (!p) { p = this.loadEntries(node); this.dirs.set(node.record, p); }
    return p;
  }

  private async loadEntries(node: NtfsNode): Promise<Map<string, number>> {
    const root = node.attributes.find((a) => a.type === AT_INDEX_ROOT && a.name === '$I30')?.resident;
    if (!root || root.length < 32) fail(`directory ${node.record} has no $I30 index root`);
    if (root!.readUInt32LE(0) !== AT_FILE_NAME) fail(`directory ${node.record} is not indexed by file name`);
    const alloc = node.attributes.find((a) => a.type === AT_INDEX_ALLOCATION && a.name === '$I30');
    const blockSize = root!.readUInt32LE(8) || this.indexBlockSize;
    if (blockSize < 512 || blockSize > 65536 || blockSize % 512) fail(`directory ${node.record}: an unusual index block size`);
    const vcnSize = blockSize >= this.clusterSize ? this.clusterSize : 512;
    const out = new Map<string, number>();
    const seen = new Set<number>();
    const walk = async (b: Buffer, header: number, depth: number): Promise<void> => {
      if (depth > MAX_DEPTH) fail('an index too deep');
      let at = header + b.readUInt32LE(header);
      const end = Math.min(b.length, header + b.readUInt32LE(header + 4));
      while (at + 16 <= end) {
        const len = b.readUInt16LE(at + 8);
        const keyLen = b.readUInt16LE(at + 10);
        const flags = b.readUInt16LE(at + 12);
        if (len < 16 || at + len > end) fail('a bad index entry');
        if (flags & 0x01) {
          const vcn = Number(b.readBigUInt64LE(at + len - 8));
          if (!alloc || alloc.resident || seen.has(vcn)) fail('a bad index node reference');
          seen.add(vcn);
          const block = await this.readRuns(alloc!.runs, vcn * vcnSize, blockSize);
          NtfsFs.fixup(block, 'INDX');
          await walk(block, 0x18, depth + 1);
        }
        if (flags & 0x02) break;
        if (keyLen < 0x42 || 16 + keyLen > len) fail('a bad index key');
        const nameLength = b[at + 16 + 0x40]!;
        const namespace = b[at + 16 + 0x41]!;
        if (0x42 + nameLength * 2 > keyLen) fail('a bad file name in an index');
        if (namespace !== 2) { // 2: the DOS 8.3 alias of a name listed under its long form
          const name = b.toString('utf16le', at + 16 + 0x42, at + 16 + 0x42 + nameLength * 2);
          const record = Number(b.readBigUInt64LE(at) & 0xffffffffffffn);
          if (record >= 16 || node.record !== ROOT_RECORD || !name.startsWith('$')) out.set(name, record); // the metadata files ($MFT, $Volume…) are not listed
          if (out.size > MAX_DIR_ENTRIES) fail('a directory too large');
        }
        at += len;
      }
    };
    await walk(root!, 16, 0);
    out.delete('.');
    return out;
  }
}

/** A Windows guest's system volume, opened read-only host-side, behind the GuestReader interface. */
export class NtfsGuest implements GuestReader {
  /**
   * The first thing this reader could not read exactly, even where a caller caught and ignored
   * it (a readdir whose failure counts as "absent"): a guest read with one is read again in an appliance.
   */
  unsupported: NtfsUnsupported | undefined;

  constructor(private readonly fs: NtfsFs) {}

  private async guard<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof NtfsUnsupported) this.unsupported ??= err;
      throw err;
    }
  }

  /**
   * The Windows guest on the disk behind `read`: the one NTFS partition holding a system root
   * (Windows\System32\config with SYSTEM and SOFTWARE); undefined when there is not exactly one,
   * or the partition table cannot be read exactly. Throws NtfsUnsupported for a volume this cannot read.
   */
  static async open(read: Reader, disk: DiskIdentity): Promise<NtfsGuest | undefined> {
    const volumes = disk.volumes.filter((v) => v.kind === 'ntfs' && v.partition !== 'disk');
    if (!volumes.length) return undefined;
    const table = await readPartitionTable(read);
    if (!table.exact) return undefined;
    const found: NtfsGuest[] = [];
    for (const v of volumes) {
      const entry = table.entries.find((e) => String(e.number) === v.partition);
      const fs = entry ? await NtfsFs.open(read, entry.offset) : undefined;
      if (!fs) continue;
      const guest = new NtfsGuest(fs);
      if (await findSystemRoot(guest)) found.push(guest);
    }
    return found.length === 1 ? found[0] : undefined;
  }

  /** The node at a guest path; null when absent. Following a reparse point throws NtfsUnsupported. */
  private async resolve(p: string, follow: boolean): Promise<NtfsNode | null> {
    if (!p.startsWith('/')) throw new GuestError(`not an absolute guest path: ${p}`, p);
    const parts: string[] = [];
    for (const part of p.split('/')) {
      if (!part || part === '.') continue;
      if (part === '..') parts.pop(); else parts.push(part);
    }
    let node = await this.fs.node(this.fs.root);
    for (const [i, part] of parts.entries()) {
      if (node.type === 'symlink') fail(`a reparse point on the way to ${p}`);
      if (node.type !== 'dir') return null;
      const record = (await this.fs.entries(node)).get(part);
      if (record === undefined) return null;
      node = await this.fs.node(record);
      if (node.type === 'symlink' && (follow || i < parts.length - 1)) fail(`a reparse point on the way to ${p}`);
    }
    return node;
  }

  private static stat(n: NtfsNode | null): FileStat | null {
    return n ? { type: n.type, mode: 0o777, uid: 0, gid: 0, size: n.size } : null;
  }

  readFile(p: string, options: ReadOptions = {}): Promise<Buffer | null> {
    return this.guard(async () => {
      const n = await this.resolve(p, true);
      if (!n) return null;
      if (n.type !== 'file') throw new GuestError(`${p} is not a regular file (${n.type})`, p);
      const max = options.maxBytes ?? DEFAULT_MAX_READ;
      if (n.size > max) throw new GuestError(`${p} is too large to read (${n.size} bytes, limit ${max})`, p);
      return this.fs.data(n, max);
    });
  }

  lstat(p: string): Promise<FileStat | null> { return this.guard(async () => NtfsGuest.stat(await this.resolve(p, false))); }
  stat(p: string): Promise<FileStat | null> { return this.guard(async () => NtfsGuest.stat(await this.resolve(p, true))); }

  readdir(p: string): Promise<string[] | null> {
    return this.guard(async () => {
      const n = await this.resolve(p, true);
      if (!n || n.type !== 'dir') return null;
      return [...(await this.fs.entries(n)).keys()].sort();
    });
  }

  readlink(p: string): Promise<string | null> {
    return this.guard(async () => {
      const n = await this.resolve(p, false);
      return n?.type === 'symlink' ? fail(`${p} is a reparse point`) : null;
    });
  }
}
