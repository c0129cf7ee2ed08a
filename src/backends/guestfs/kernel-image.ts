/**
 * Reading an x86 Linux kernel image: where the compressed kernel sits in a
 * bzImage, and whether an uncompressed vmlinux can be started by QEMU's
 * `-kernel` directly (it needs a PVH entry point). Pure: bytes in, facts out.
 *
 * Why: under TCG the bzImage's own decompressor (xz on Debian) takes about
 * 4 s of emulated CPU at every appliance launch; the same kernel given to QEMU
 * uncompressed starts at once. See appliance-kernel.ts.
 */

/** The compressions an x86 kernel build can choose (CONFIG_KERNEL_*). */
export type KernelCompression = 'gzip' | 'xz' | 'zstd' | 'lzma' | 'bzip2' | 'lz4' | 'lzo';

export interface CompressedKernel {
  readonly compression: KernelCompression;
  /** The compressed stream alone (the 4-byte size the build appends is cut off). */
  readonly payload: Buffer;
  /** The uncompressed size the build recorded after the stream. */
  readonly size: number;
}

/** Why a file cannot be used; callers fall back to the kernel as it is. */
export interface NotUsable {
  readonly reason: string;
}

const MAGICS: ReadonlyArray<readonly [KernelCompression, readonly number[]]> = [
  ['gzip', [0x1f, 0x8b]],
  ['xz', [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]],
  ['zstd', [0x28, 0xb5, 0x2f, 0xfd]],
  ['bzip2', [0x42, 0x5a, 0x68]],
  ['lz4', [0x02, 0x21, 0x4c, 0x18]],
  ['lzo', [0x89, 0x4c, 0x5a, 0x4f]],
  ['lzma', [0x5d, 0x00, 0x00]],
];

function compressionOf(payload: Buffer): KernelCompression | undefined {
  return MAGICS.find(([, magic]) => magic.every((b, i) => payload[i] === b))?.[0];
}

/**
 * The compressed kernel inside a bzImage (boot protocol 2.08 or later, which
 * records payload_offset and payload_length in the setup header; see the
 * kernel's Documentation/arch/x86/boot.rst).
 */
export function compressedKernel(image: Buffer): CompressedKernel | NotUsable {
  if (image.length < 0x250 || image.toString('latin1', 0x202, 0x206) !== 'HdrS') return { reason: 'not a bzImage (no HdrS setup header)' };
  const protocol = image.readUInt16LE(0x206);
  if (protocol < 0x208) return { reason: `boot protocol ${(protocol >> 8).toString()}.${(protocol & 0xff).toString().padStart(2, '0')} records no payload (2.08 or later does)` };
  const setupSectors = image[0x1f1] || 4; // 0 means 4, for old boot loaders
  const start = (setupSectors + 1) * 512 + image.readUInt32LE(0x248);
  const length = image.readUInt32LE(0x24c);
  if (length < 8 || start + length > image.length) return { reason: `payload (${length} bytes at ${start}) lies outside the ${image.length}-byte file` };
  const stream = image.subarray(start, start + length);
  const compression = compressionOf(stream);
  if (!compression) return { reason: `unknown compression (payload starts ${stream.subarray(0, 6).toString('hex')})` };
  return { compression, payload: stream.subarray(0, length - 4), size: stream.readUInt32LE(length - 4) };
}

const PT_NOTE = 4;
/** XEN_ELFNOTE_PHYS32_ENTRY: the 32-bit PVH entry point QEMU's -kernel looks for in an ELF kernel. */
const PVH_ENTRY_NOTE = 18;

/** True when `elf` is a 64-bit little-endian ELF whose notes carry a PVH entry point ("Xen", type 18). */
export function hasPvhEntry(elf: Buffer): boolean {
  if (elf.length < 64 || elf.readUInt32BE(0) !== 0x7f454c46 || elf[4] !== 2 || elf[5] !== 1) return false;
  const phoff = Number(elf.readBigUInt64LE(0x20));
  const phentsize = elf.readUInt16LE(0x36);
  const phnum = elf.readUInt16LE(0x38);
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize;
    if (ph + 56 > elf.length) return false;
    if (elf.readUInt32LE(ph) !== PT_NOTE) continue;
    const offset = Number(elf.readBigUInt64LE(ph + 8));
    const size = Number(elf.readBigUInt64LE(ph + 32));
    if (notesHavePvh(elf, offset, Math.min(offset + size, elf.length))) return true;
  }
  return false;
}

function notesHavePvh(elf: Buffer, from: number, end: number): boolean {
  const align4 = (n: number): number => Math.ceil(n / 4) * 4; // not bitwise: sizes are 32-bit unsigned
  for (let at = from; at + 12 <= end; ) {
    const namesz = elf.readUInt32LE(at);
    const descsz = elf.readUInt32LE(at + 4);
    const type = elf.readUInt32LE(at + 8);
    const name = elf.toString('latin1', at + 12, Math.min(at + 12 + namesz, end)).replace(/\0+$/, '');
    if (name === 'Xen' && type === PVH_ENTRY_NOTE) return true;
    at += 12 + align4(namesz) + align4(descsz);
  }
  return false;
}
