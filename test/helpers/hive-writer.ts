/**
 * A writer of new registry hive files ("regf") from a tree, for tests: hivex can
 * only edit existing hives, and the tests must not ship Microsoft material.
 * The format is described in src/windows/regf.ts, which holds the reader.
 */
import { encodeValue, type RawValue } from '../../src/windows/regf.js';
import type { RegistryValue } from '../../src/core/file-change.js';

export interface KeySpec {
  readonly values?: Readonly<Record<string, RegistryValue | RawValue>>;
  readonly subkeys?: Readonly<Record<string, KeySpec>>;
}

const BASE_BLOCK = 0x1000;
const HBIN_HEADER = 0x20;
const NONE = 0xffffffff;
/** Biggest value data in one cell; beyond it regf uses "db" big-data records (not written here). */
const MAX_CELL_DATA = 16344;

/** The hash of an "lh" list entry: over the upper-cased name, h = h * 37 + c. */
export function lhHash(name: string): number {
  let h = 0;
  for (const ch of name.toUpperCase()) h = (Math.imul(h, 37) + ch.charCodeAt(0)) >>> 0;
  return h;
}

/** Windows sorts subkey lists by upper-cased name. */
function byUpperName(a: string, b: string): number {
  const x = a.toUpperCase();
  const y = b.toUpperCase();
  return x < y ? -1 : x > y ? 1 : 0;
}

function isAscii(s: string): boolean {
  return /^[\x20-\x7e]*$/.test(s);
}

/** FILETIME (100 ns since 1601) of a date. */
function filetime(d: Date): bigint {
  return BigInt(d.getTime()) * 10000n + 116444736000000000n;
}

class CellWriter {
  private readonly chunks: Buffer[] = [];
  private size = HBIN_HEADER;
  /** Allocate a cell for `body` (the record without the size field); returns its offset from the first hbin. */
  alloc(body: Buffer): number {
    const offset = this.size;
    const len = (body.length + 4 + 7) & ~7;
    const cell = Buffer.alloc(len);
    cell.writeInt32LE(-len, 0);
    body.copy(cell, 4);
    this.chunks.push(cell);
    this.size += len;
    return offset;
  }
  /** Patch a 32-bit field of an allocated cell's body. */
  patch(offset: number, field: number, value: number): void {
    let at = HBIN_HEADER;
    for (const c of this.chunks) {
      if (at === offset) { c.writeUInt32LE(value >>> 0, 4 + field); return; }
      at += c.length;
    }
    throw new Error(`internal: no cell at ${offset}`);
  }
  bins(time: bigint): Buffer {
    const total = Math.ceil(this.size / 4096) * 4096;
    const bin = Buffer.alloc(total);
    bin.write('hbin', 0, 'latin1');
    bin.writeUInt32LE(0, 4);
    bin.writeUInt32LE(total, 8);
    bin.writeBigUInt64LE(time, 0x14);
    let at = HBIN_HEADER;
    for (const c of this.chunks) { c.copy(bin, at); at += c.length; }
    if (total > at) bin.writeInt32LE(total - at, at); // the rest is one free cell
    return bin;
  }
}

export interface BuildOptions {
  /** The name stored in the base block ("\\SystemRoot\\System32\\Config\\SYSTEM"); informational. */
  readonly fileName?: string;
  readonly time?: Date;
}

/** A new hive file holding `root` (the root key is named ROOT, as Windows names it in new hives). */
export function buildHive(root: KeySpec, options: BuildOptions = {}): Buffer {
  const time = filetime(options.time ?? new Date(Date.UTC(2020, 0, 1)));
  const w = new CellWriter();
  // One security cell shared by every key: a self-relative descriptor with no owner, group or ACLs.
  const sd = Buffer.alloc(20);
  sd.writeUInt8(1, 0); // revision
  sd.writeUInt16LE(0x8000, 2); // SE_SELF_RELATIVE
  const sk = Buffer.alloc(20 + sd.length);
  sk.write('sk', 0, 'latin1');
  sd.copy(sk, 20);
  sk.writeUInt32LE(sd.length, 16);
  const skOffset = w.alloc(sk);
  w.patch(skOffset, 4, skOffset); // flink
  w.patch(skOffset, 8, skOffset); // blink
  let keys = 0;

  const writeKey = (name: string, spec: KeySpec, parent: number, isRoot: boolean): number => {
    keys++;
    if (!isAscii(name) || name.length === 0 || name.length > 255 || name.includes('\\')) throw new RangeError(`bad key name ${JSON.stringify(name)}`);
    const nk = Buffer.alloc(76 + name.length);
    nk.write('nk', 0, 'latin1');
    nk.writeUInt16LE(0x20 | (isRoot ? 0x0c : 0), 2); // KEY_COMP_NAME (+ KEY_HIVE_ENTRY | KEY_NO_DELETE)
    nk.writeBigUInt64LE(time, 4);
    nk.writeUInt32LE(parent, 16);
    nk.writeUInt32LE(NONE, 28);
    nk.writeUInt32LE(NONE, 32);
    nk.writeUInt32LE(NONE, 40);
    nk.writeUInt32LE(skOffset, 44);
    nk.writeUInt32LE(NONE, 48);
    nk.writeUInt16LE(name.length, 72);
    nk.write(name, 76, 'latin1');
    const self = w.alloc(nk);

    const values = Object.entries(spec.values ?? {});
    if (values.length) {
      const offsets: number[] = [];
      let maxName = 0;
      let maxData = 0;
      for (const [vname, v] of values) {
        if (!isAscii(vname) || vname.length > 16383) throw new RangeError(`bad value name ${JSON.stringify(vname)}`);
        const raw = encodeValue(v);
        if (raw.data.length > MAX_CELL_DATA) throw new RangeError(`value ${vname}: data of ${raw.data.length} bytes needs big-data records`);
        const vk = Buffer.alloc(20 + vname.length);
        vk.write('vk', 0, 'latin1');
        vk.writeUInt16LE(vname.length, 2);
        if (raw.data.length <= 4) {
          vk.writeUInt32LE((raw.data.length | 0x80000000) >>> 0, 4);
          raw.data.copy(vk, 8);
        } else {
          vk.writeUInt32LE(raw.data.length, 4);
          vk.writeUInt32LE(w.alloc(raw.data), 8);
        }
        vk.writeUInt32LE(raw.type, 12);
        vk.writeUInt16LE(vname.length ? 1 : 0, 16); // VALUE_COMP_NAME
        vk.write(vname, 20, 'latin1');
        offsets.push(w.alloc(vk));
        maxName = Math.max(maxName, vname.length * 2);
        maxData = Math.max(maxData, raw.data.length);
      }
      const list = Buffer.alloc(offsets.length * 4);
      offsets.forEach((o, i) => list.writeUInt32LE(o, i * 4));
      w.patch(self, 36, offsets.length);
      w.patch(self, 40, w.alloc(list));
      w.patch(self, 60, maxName);
      w.patch(self, 64, maxData);
    }

    const subkeys = Object.entries(spec.subkeys ?? {}).sort(([a], [b]) => byUpperName(a, b));
    if (subkeys.length) {
      const lh = Buffer.alloc(4 + subkeys.length * 8);
      lh.write('lh', 0, 'latin1');
      lh.writeUInt16LE(subkeys.length, 2);
      let maxName = 0;
      subkeys.forEach(([sub, subSpec], i) => {
        lh.writeUInt32LE(writeKey(sub, subSpec, self, false), 4 + i * 8);
        lh.writeUInt32LE(lhHash(sub), 8 + i * 8);
        maxName = Math.max(maxName, sub.length * 2);
      });
      w.patch(self, 20, subkeys.length);
      w.patch(self, 28, w.alloc(lh));
      w.patch(self, 52, maxName);
    }
    return self;
  };
  const rootOffset = writeKey('ROOT', root, 0, true);
  w.patch(skOffset, 12, keys); // reference count
  const bins = w.bins(time);

  const base = Buffer.alloc(BASE_BLOCK);
  base.write('regf', 0, 'latin1');
  base.writeUInt32LE(1, 4);
  base.writeUInt32LE(1, 8);
  base.writeBigUInt64LE(time, 12);
  base.writeUInt32LE(1, 0x14); // major
  base.writeUInt32LE(3, 0x18); // minor
  base.writeUInt32LE(0, 0x1c); // primary file
  base.writeUInt32LE(1, 0x20); // direct memory load
  base.writeUInt32LE(rootOffset, 0x24);
  base.writeUInt32LE(bins.length, 0x28);
  base.writeUInt32LE(1, 0x2c); // clustering factor
  Buffer.from((options.fileName ?? '').slice(0, 31), 'utf16le').copy(base, 0x30);
  base.writeUInt32LE(headerChecksum(base), 0x1fc);
  return Buffer.concat([base, bins]);
}

/** XOR of the first 127 dwords; 0 and 0xffffffff are not used. */
export function headerChecksum(base: Buffer): number {
  let x = 0;
  for (let i = 0; i < 0x1fc; i += 4) x = (x ^ base.readUInt32LE(i)) >>> 0;
  if (x === 0xffffffff) return 0xfffffffe;
  if (x === 0) return 1;
  return x;
}
