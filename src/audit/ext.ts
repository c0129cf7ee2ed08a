/**
 * A read-only ext2/3/4 reader over a byte reader, for audit's host-side path:
 * the few small files audit reads (machine-id, host keys, DHCP and
 * NetworkManager state…) without an appliance.
 *
 * Follows what mkfs.ext4 and the distribution installers make: extents and
 * block maps, 32- and 64-bit group descriptors, htree directories (read
 * linearly: their index blocks look like empty entries), fast and slow
 * symlinks. A filesystem whose journal needs recovery (its blocks may be
 * stale), meta_bg, and inodes with inline data or encryption throw
 * ExtUnsupported: the caller reads that guest in an appliance instead.
 */
import type { Reader } from './headers.js';

export class ExtUnsupported extends Error {}

export interface ExtInode {
  readonly ino: number;
  readonly type: 'file' | 'dir' | 'symlink' | 'other';
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  readonly flags: number;
  readonly block: Buffer;
  readonly sectors: number;
  readonly fileAcl: number;
}

const INCOMPAT_RECOVER = 0x4;
const INCOMPAT_JOURNAL_DEV = 0x8;
const INCOMPAT_META_BG = 0x10;
const INCOMPAT_64BIT = 0x80;
const EXTENTS_FL = 0x80000;
const INLINE_DATA_FL = 0x10000000;
const ENCRYPT_FL = 0x800;
const MAX_FILE = 16 * 1024 * 1024;

export class ExtFs {
  private readonly inodeCache = new Map<number, Promise<ExtInode>>();
  private readonly dirCache = new Map<number, Promise<Map<string, number>>>();
  private gdt?: Promise<Buffer>;

  private constructor(
    private readonly read: Reader,
    private readonly offset: number,
    readonly blockSize: number,
    private readonly inodesPerGroup: number,
    private readonly inodeSize: number,
    private readonly descSize: number,
    private readonly firstDataBlock: number,
    private readonly groups: number,
  ) {}

  /** Open the filesystem starting at `offset`; undefined when it is no ext filesystem. */
  static async open(read: Reader, offset: number): Promise<ExtFs | undefined> {
    const sb = await read(offset + 1024, 1024);
    if (sb.length < 1024 || sb.readUInt16LE(56) !== 0xef53) return undefined;
    const incompat = sb.readUInt32LE(96);
    if (incompat & INCOMPAT_RECOVER) throw new ExtUnsupported('the journal needs recovery');
    if (incompat & (INCOMPAT_JOURNAL_DEV | INCOMPAT_META_BG)) throw new ExtUnsupported(`ext features 0x${incompat.toString(16)}`);
    const logBlock = sb.readUInt32LE(24);
    if (logBlock > 6) throw new ExtUnsupported('block size');
    const blockSize = 1024 << logBlock;
    const revLevel = sb.readUInt32LE(76);
    const inodeSize = revLevel === 0 ? 128 : sb.readUInt16LE(88);
    const descSize = incompat & INCOMPAT_64BIT ? sb.readUInt16LE(254) || 64 : 32;
    const blocksPerGroup = sb.readUInt32LE(32);
    const inodesPerGroup = sb.readUInt32LE(40);
    const blocks = Number(sb.readUInt32LE(4)) + (incompat & INCOMPAT_64BIT ? sb.readUInt32LE(0x150) * 2 ** 32 : 0);
    const firstDataBlock = sb.readUInt32LE(20);
    if (!inodesPerGroup || !blocksPerGroup || inodeSize < 128 || descSize < 32) throw new ExtUnsupported('superblock geometry');
    const groups = Math.ceil((blocks - firstDataBlock) / blocksPerGroup);
    return new ExtFs(read, offset, blockSize, inodesPerGroup, inodeSize, descSize, firstDataBlock, groups);
  }

  private blocks(block: number, count = 1): Promise<Buffer> {
    return this.read(this.offset + block * this.blockSize, count * this.blockSize);
  }

  async inode(ino: number): Promise<ExtInode> {
    let p = this.inodeCache.get(ino);
    if (!p) { p = this.loadInode(ino); this.inodeCache.set(ino, p); }
    return p;
  }

  private async loadInode(ino: number): Promise<ExtInode> {
    const group = Math.floor((ino - 1) / this.inodesPerGroup);
    if (ino < 1 || group >= this.groups) throw new ExtUnsupported(`inode ${ino} out of range`);
    this.gdt ??= this.blocks(this.firstDataBlock + 1, Math.ceil((this.groups * this.descSize) / this.blockSize));
    const gdt = await this.gdt;
    const d = group * this.descSize;
    const table = gdt.readUInt32LE(d + 8) + (this.descSize >= 64 ? gdt.readUInt32LE(d + 0x28) * 2 ** 32 : 0);
    const at = this.offset + table * this.blockSize + ((ino - 1) % this.inodesPerGroup) * this.inodeSize;
    const b = await this.read(at, 128);
    const mode = b.readUInt16LE(0);
    const fmt = mode & 0xf000;
    return {
      ino,
      type: fmt === 0x8000 ? 'file' : fmt === 0x4000 ? 'dir' : fmt === 0xa000 ? 'symlink' : 'other',
      mode: mode & 0o7777,
      uid: b.readUInt16LE(2) | (b.readUInt16LE(120) << 16),
      gid: b.readUInt16LE(24) | (b.readUInt16LE(122) << 16),
      size: b.readUInt32LE(4) + b.readUInt32LE(108) * 2 ** 32,
      flags: b.readUInt32LE(32),
      block: b.subarray(40, 100),
      sectors: b.readUInt32LE(28),
      fileAcl: b.readUInt32LE(104) + b.readUInt16LE(118) * 2 ** 32,
    };
  }

  /** Physical block of each logical block of the inode (0 for holes), up to `count` blocks. */
  private async blockMap(inode: ExtInode, count: number): Promise<number[]> {
    if (inode.flags & (INLINE_DATA_FL | ENCRYPT_FL)) throw new ExtUnsupported(`inode ${inode.ino}: inline data or encryption`);
    const map = new Array<number>(count).fill(0);
    if (inode.flags & EXTENTS_FL) {
      const walk = async (node: Buffer, depth: number): Promise<void> => {
        if (node.readUInt16LE(0) !== 0xf30a || depth > 5) throw new ExtUnsupported(`inode ${inode.ino}: bad extent header`);
        const entries = node.readUInt16LE(2);
        const level = node.readUInt16LE(6);
        for (let i = 0; i < entries; i++) {
          const e = 12 + i * 12;
          if (level === 0) {
            const logical = node.readUInt32LE(e);
            let len = node.readUInt16LE(e + 4);
            const uninit = len > 32768;
            if (uninit) len -= 32768;
            const start = node.readUInt16LE(e + 6) * 2 ** 32 + node.readUInt32LE(e + 8);
            for (let k = 0; k < len && logical + k < count; k++) map[logical + k] = uninit ? 0 : start + k;
          } else {
            const leaf = node.readUInt32LE(e + 4) + node.readUInt16LE(e + 8) * 2 ** 32;
            await walk(await this.blocks(leaf), depth + 1);
          }
        }
      };
      await walk(inode.block, 0);
      return map;
    }
    const per = this.blockSize / 4;
    for (let i = 0; i < 12 && i < count; i++) map[i] = inode.block.readUInt32LE(i * 4);
    const indirect = async (block: number, level: number, first: number): Promise<void> => {
      if (!block || first >= count) return;
      const b = await this.blocks(block);
      const span = per ** (level - 1);
      for (let i = 0; i < per && first + i * span < count; i++) {
        const n = b.readUInt32LE(i * 4);
        if (level === 1) map[first + i] = n; else await indirect(n, level - 1, first + i * span);
      }
    };
    await indirect(inode.block.readUInt32LE(48), 1, 12);
    await indirect(inode.block.readUInt32LE(52), 2, 12 + per);
    await indirect(inode.block.readUInt32LE(56), 3, 12 + per + per * per);
    return map;
  }

  /** The inode's data (files, directories, slow symlinks), at most `max` bytes. */
  async data(inode: ExtInode, max = MAX_FILE): Promise<Buffer> {
    if (inode.size > max) throw new Error(`too large to read (${inode.size} bytes, limit ${max})`);
    const count = Math.ceil(inode.size / this.blockSize);
    const map = await this.blockMap(inode, count);
    const parts: Buffer[] = [];
    for (let i = 0; i < count;) {
      let run = 1;
      while (i + run < count && map[i + run] && map[i + run] === map[i]! + run) run++;
      parts.push(map[i] ? await this.blocks(map[i]!, run) : Buffer.alloc(run * this.blockSize));
      i += run;
    }
    return Buffer.concat(parts).subarray(0, inode.size);
  }

  async readlink(inode: ExtInode): Promise<string> {
    const aclSectors = inode.fileAcl ? this.blockSize / 512 : 0;
    if (inode.size < 60 && inode.sectors - aclSectors === 0 && !(inode.flags & (EXTENTS_FL | INLINE_DATA_FL))) return inode.block.toString('utf8', 0, inode.size);
    return (await this.data(inode, 4096)).toString('utf8');
  }

  /** Entries of a directory inode (without "." and ".."). */
  async entries(dir: ExtInode): Promise<Map<string, number>> {
    let p = this.dirCache.get(dir.ino);
    if (!p) {
      p = (async () => {
        const b = await this.data(dir, 64 * 1024 * 1024);
        const out = new Map<string, number>();
        for (let at = 0; at + 8 <= b.length;) {
          const ino = b.readUInt32LE(at);
          const rec = b.readUInt16LE(at + 4);
          const len = b[at + 6]!;
          if (rec < 8) throw new ExtUnsupported(`directory ${dir.ino}: bad entry`);
          const name = b.toString('utf8', at + 8, at + 8 + len);
          if (ino && name !== '.' && name !== '..') out.set(name, ino);
          at += rec;
        }
        return out;
      })();
      this.dirCache.set(dir.ino, p);
    }
    return p;
  }
}
