/**
 * An in-process reader of the guest-visible bytes of a qcow2 image (and its
 * backing chain), so that audit can read headers and small files of many
 * clones without a qemu process per read.
 *
 * Covers what deploy makes and libraries hold: qcow2 v2/v3, standard and
 * deflate-compressed clusters, all-zero clusters, backing files whose format
 * the image names (qcow2 or raw). Anything else (encryption, external data
 * files, extended L2 entries, zstd clusters, a backing file without a named
 * format, which qemu would probe) throws Qcow2Unsupported: the caller then
 * reads through qemu-img or an appliance instead.
 *
 * A backing file it does not follow (a zstd-compressed library image under
 * deploy's overlay clones) is read through `qemu-img dd`, a block at a time,
 * and its blocks are kept for the process: the clones of one base share it,
 * so the audit of N clones reads each block of the base once, not N times,
 * and each clone's own clusters are read in process.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { inflateRawSync, constants as zc } from 'node:zlib';
import { execa } from 'execa';
import { readImageBytes } from '../backends/guestfs/lvm-probe.js';

export class Qcow2Unsupported extends Error {}

export interface ImageBytes {
  read(offset: number, length: number): Promise<Buffer>;
  readonly size: number;
  close(): Promise<void>;
}

const L1_MASK = 0x00fffffffffffe00n;
const MAX_CHAIN = 16;

async function readAt(fh: fs.FileHandle, offset: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  const { bytesRead } = await fh.read(buf, 0, length, offset);
  return bytesRead === length ? buf : Buffer.concat([buf.subarray(0, bytesRead), Buffer.alloc(length - bytesRead)]);
}

async function openRaw(file: string): Promise<ImageBytes> {
  const fh = await fs.open(file, 'r');
  const size = (await fh.stat()).size;
  return {
    size,
    read: async (offset, length) => {
      const n = Math.max(0, Math.min(length, size - offset));
      const b = n ? await readAt(fh, offset, n) : Buffer.alloc(0);
      return n === length ? b : Buffer.concat([b, Buffer.alloc(length - n)]);
    },
    close: () => fh.close(),
  };
}

/** Blocks of backing files read through qemu-img; at most QEMU_BLOCKS kept, the oldest dropped first. */
const QEMU_BLOCK = 256 * 1024;
const QEMU_BLOCKS = 256;
const qemuBlocks = new Map<string, Promise<Buffer>>();
const qemuSizes = new Map<string, Promise<number>>();
/** qemu-img runs made for backing blocks in this process (tests count them). */
export let qemuBlockReads = 0;

/** A backing file this reader does not follow, read through qemu-img in cached blocks (keyed by path, size and mtime). */
async function openThroughQemu(file: string, format: string): Promise<ImageBytes> {
  const st = await fs.stat(file);
  const id = `${file}\0${format}\0${st.size}\0${st.mtimeMs}`;
  let sizeOf = qemuSizes.get(id);
  if (!sizeOf) {
    sizeOf = execa('qemu-img', ['info', '--output=json', '-f', format, file]).then((r) => Number((JSON.parse(r.stdout) as { 'virtual-size': number })['virtual-size']));
    qemuSizes.set(id, sizeOf);
    sizeOf.catch(() => qemuSizes.delete(id));
  }
  const size = await sizeOf;
  const block = (i: number): Promise<Buffer> => {
    const key = `${id}\0${i}`;
    let b = qemuBlocks.get(key);
    if (b) { qemuBlocks.delete(key); qemuBlocks.set(key, b); return b; }
    qemuBlockReads++;
    b = readImageBytes(file, format, i * QEMU_BLOCK, Math.min(QEMU_BLOCK, size - i * QEMU_BLOCK));
    qemuBlocks.set(key, b);
    b.catch(() => qemuBlocks.delete(key));
    while (qemuBlocks.size > QEMU_BLOCKS) qemuBlocks.delete(qemuBlocks.keys().next().value!);
    return b;
  };
  return {
    size,
    read: async (offset, length) => {
      const parts: Buffer[] = [];
      for (let at = offset; at < offset + length;) {
        const i = Math.floor(at / QEMU_BLOCK);
        const within = at - i * QEMU_BLOCK;
        const n = Math.min(QEMU_BLOCK - within, offset + length - at);
        const data = at < size ? await block(i) : Buffer.alloc(0);
        const part = data.subarray(within, within + n);
        parts.push(part.length === n ? part : Buffer.concat([part, Buffer.alloc(n - part.length)]));
        at += n;
      }
      return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    },
    close: async () => undefined,
  };
}

/** Open an image of format `format` ('qcow2' or 'raw') for reading its guest-visible bytes. */
export async function openImageBytes(file: string, format: string, depth = 0): Promise<ImageBytes> {
  if (format === 'raw') return openRaw(file);
  if (format !== 'qcow2') throw new Qcow2Unsupported(`${format} images are read through qemu`);
  if (depth > MAX_CHAIN) throw new Qcow2Unsupported('backing chain too long');
  const fh = await fs.open(file, 'r');
  let backing: ImageBytes | undefined;
  try {
    const h = await readAt(fh, 0, 512);
    if (h.toString('latin1', 0, 4) !== 'QFI\xfb') throw new Qcow2Unsupported(`${file}: not a qcow2 image`);
    const version = h.readUInt32BE(4);
    const clusterBits = h.readUInt32BE(20);
    const size = Number(h.readBigUInt64BE(24));
    if (h.readUInt32BE(32) !== 0) throw new Qcow2Unsupported(`${file}: encrypted (qcow2 AES)`);
    const l1Size = h.readUInt32BE(36);
    const l1Offset = Number(h.readBigUInt64BE(40));
    let headerLength = 72;
    if (version >= 3) {
      const incompatible = h.readBigUInt64BE(72);
      if (incompatible & ~0b1001n) throw new Qcow2Unsupported(`${file}: qcow2 features this reader does not follow (0x${incompatible.toString(16)})`);
      headerLength = h.readUInt32BE(100);
      if (headerLength > 104 && h[104] !== 0) throw new Qcow2Unsupported(`${file}: zstd-compressed clusters`);
    } else if (version !== 2) throw new Qcow2Unsupported(`${file}: qcow2 version ${version}`);
    if (clusterBits < 9 || clusterBits > 21) throw new Qcow2Unsupported(`${file}: cluster size 2^${clusterBits}`);
    // header extensions: the backing format, and refusals
    let backingFormat: string | undefined;
    const ext = await readAt(fh, headerLength, 4096);
    for (let at = 0; at + 8 <= ext.length;) {
      const type = ext.readUInt32BE(at);
      const len = ext.readUInt32BE(at + 4);
      if (type === 0) break;
      if (type === 0xe2792aca) backingFormat = ext.toString('latin1', at + 8, at + 8 + len);
      if (type === 0x44415441) throw new Qcow2Unsupported(`${file}: external data file`);
      at += 8 + Math.ceil(len / 8) * 8;
    }
    const backingOffset = Number(h.readBigUInt64BE(8));
    if (backingOffset) {
      const name = (await readAt(fh, backingOffset, h.readUInt32BE(16))).toString('utf8');
      if (backingFormat !== 'qcow2' && backingFormat !== 'raw') throw new Qcow2Unsupported(`${file}: backing file without a named format`);
      if (/^[a-z]+:/i.test(name) && !name.startsWith('/')) throw new Qcow2Unsupported(`${file}: backing file is a protocol URL`);
      const backingFile = path.resolve(path.dirname(file), name);
      backing = await openImageBytes(backingFile, backingFormat, depth + 1).catch((err: unknown) => {
        if (err instanceof Qcow2Unsupported) return openThroughQemu(backingFile, backingFormat!);
        throw err;
      });
    }
    const clusterSize = 2 ** clusterBits;
    const l2Entries = clusterSize / 8;
    const l1 = await readAt(fh, l1Offset, l1Size * 8);
    const l2Cache = new Map<number, Promise<Buffer>>();
    const compressedShift = BigInt(62 - (clusterBits - 8));
    const cluster = async (index: number): Promise<Buffer | null> => {
      const l1i = Math.floor(index / l2Entries);
      if (l1i >= l1Size) return null;
      const l2Offset = Number(l1.readBigUInt64BE(l1i * 8) & L1_MASK);
      if (!l2Offset) return null;
      let l2 = l2Cache.get(l2Offset);
      if (!l2) { l2 = readAt(fh, l2Offset, clusterSize); l2Cache.set(l2Offset, l2); }
      const e = (await l2).readBigUInt64BE((index % l2Entries) * 8);
      if (e & (1n << 62n)) {
        const host = Number(e & ((1n << compressedShift) - 1n));
        const sectors = Number((e >> compressedShift) & ((1n << BigInt(clusterBits - 8)) - 1n)) + 1;
        const raw = await readAt(fh, host, sectors * 512 - (host % 512));
        const out = inflateRawSync(raw, { finishFlush: zc.Z_SYNC_FLUSH });
        return out.length >= clusterSize ? out.subarray(0, clusterSize) : Buffer.concat([out, Buffer.alloc(clusterSize - out.length)]);
      }
      if (version >= 3 && (e & 1n)) return Buffer.alloc(clusterSize);
      const host = Number(e & L1_MASK);
      return host ? readAt(fh, host, clusterSize) : null;
    };
    return {
      size,
      read: async (offset, length) => {
        const parts: Buffer[] = [];
        for (let at = offset; at < offset + length;) {
          const index = Math.floor(at / clusterSize);
          const within = at - index * clusterSize;
          const n = Math.min(clusterSize - within, offset + length - at);
          const data = at >= size ? null : await cluster(index);
          if (data) parts.push(data.subarray(within, within + n));
          else if (backing && at < backing.size) parts.push(await backing.read(at, n));
          else parts.push(Buffer.alloc(n));
          at += n;
        }
        return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
      },
      close: async () => { await fh.close(); await backing?.close(); },
    };
  } catch (err) {
    await fh.close();
    await backing?.close();
    throw err;
  }
}
