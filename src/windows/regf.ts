/**
 * The Windows registry hive file format ("regf"), as documented publicly
 * (Joachim Metz's libregf notes, hivex's lib/hivex-internal.h): a 4 KiB
 * base block, then hive bins ("hbin", multiples of 4 KiB) holding cells.
 * A cell is a signed 32-bit size (negative when allocated, 8-byte aligned)
 * followed by a record: "nk" key node, "vk" value, "sk" security, "lh"
 * subkey list, or a bare value list / data cell.
 *
 * `buildHive` writes a new hive from a tree (hivex can only edit existing
 * hives, and the tests must not ship Microsoft material); `parseHive` reads
 * one (bounds-checked: the guest's hive is untrusted input). Editing existing
 * hives is left to hivex (see hive.ts): it keeps everything we do not model
 * (security descriptors, class names, big data, logs).
 */
import type { RegistryValue } from '../plan/types.js';

export const REG_NONE = 0;
export const REG_SZ = 1;
export const REG_EXPAND_SZ = 2;
export const REG_BINARY = 3;
export const REG_DWORD = 4;
export const REG_MULTI_SZ = 7;
export const REG_QWORD = 11;

/** A value as stored: type number and raw bytes. */
export interface RawValue {
  readonly type: number;
  readonly data: Buffer;
}

export interface KeySpec {
  readonly values?: Readonly<Record<string, RegistryValue | RawValue>>;
  readonly subkeys?: Readonly<Record<string, KeySpec>>;
}

const BASE_BLOCK = 0x1000;
const HBIN_HEADER = 0x20;
const NONE = 0xffffffff;
/** Biggest value data in one cell; beyond it regf uses "db" big-data records (not written here). */
const MAX_CELL_DATA = 16344;

function utf16z(s: string): Buffer {
  return Buffer.from(s + '\0', 'utf16le');
}

/** The bytes a typed value is stored as (REG_SZ: UTF-16LE with its terminating NUL). */
export function encodeValue(v: RegistryValue | RawValue): RawValue {
  if ('data' in v) return v;
  switch (v.type) {
    case 'sz': return { type: REG_SZ, data: utf16z(v.value) };
    case 'expand_sz': return { type: REG_EXPAND_SZ, data: utf16z(v.value) };
    case 'multi_sz': return { type: REG_MULTI_SZ, data: Buffer.concat([...v.value.map(utf16z), Buffer.from([0, 0])]) };
    case 'dword': {
      const b = Buffer.alloc(4);
      b.writeUInt32LE(v.value >>> 0);
      return { type: REG_DWORD, data: b };
    }
  }
}

/** A stored value as a typed one; undefined for types we do not model (binary, qword…). */
export function decodeValue(raw: RawValue): RegistryValue | undefined {
  const str = (b: Buffer): string => {
    const s = b.subarray(0, b.length - (b.length % 2)).toString('utf16le');
    const nul = s.indexOf('\0');
    return nul >= 0 ? s.slice(0, nul) : s;
  };
  switch (raw.type) {
    case REG_SZ: return { type: 'sz', value: str(raw.data) };
    case REG_EXPAND_SZ: return { type: 'expand_sz', value: str(raw.data) };
    case REG_DWORD: return raw.data.length >= 4 ? { type: 'dword', value: raw.data.readUInt32LE(0) } : undefined;
    case REG_MULTI_SZ: {
      const s = raw.data.subarray(0, raw.data.length - (raw.data.length % 2)).toString('utf16le');
      const parts = s.split('\0');
      while (parts.length && parts[parts.length - 1] === '') parts.pop();
      return { type: 'multi_sz', value: parts };
    }
    default: return undefined;
  }
}

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

// ---- reading ---------------------------------------------------------------

export class HiveFormatError extends Error {}

export interface HiveNode {
  readonly name: string;
  readonly offset: number;
}

/**
 * Read access to a hive held in memory. Every offset is checked against the
 * file before use and recursion is bounded: a hostile hive can make a read
 * fail, never loop or read out of bounds.
 */
export class HiveReader {
  private readonly bins: Buffer;
  readonly root: HiveNode;
  constructor(file: Buffer) {
    if (file.length < BASE_BLOCK + HBIN_HEADER || file.toString('latin1', 0, 4) !== 'regf') throw new HiveFormatError('not a registry hive (no regf signature)');
    const size = file.readUInt32LE(0x28);
    this.bins = file.subarray(BASE_BLOCK, BASE_BLOCK + Math.min(size, file.length - BASE_BLOCK));
    if (this.bins.toString('latin1', 0, 4) !== 'hbin') throw new HiveFormatError('no hbin after the base block');
    const root = file.readUInt32LE(0x24);
    this.root = { name: this.nk(root).name, offset: root };
  }

  /** The body of the cell at `offset` (after its size field). */
  private cell(offset: number): Buffer {
    if (offset === NONE || offset + 4 > this.bins.length || offset % 8 !== 0) throw new HiveFormatError(`cell offset ${offset} out of bounds`);
    const size = -this.bins.readInt32LE(offset);
    if (size < 8 || offset + size > this.bins.length) throw new HiveFormatError(`bad cell at ${offset}`);
    return this.bins.subarray(offset + 4, offset + size);
  }

  private nk(offset: number): { name: string; body: Buffer } {
    const b = this.cell(offset);
    if (b.length < 76 || b.toString('latin1', 0, 2) !== 'nk') throw new HiveFormatError(`no key node at ${offset}`);
    const len = b.readUInt16LE(72);
    if (76 + len > b.length) throw new HiveFormatError(`key name at ${offset} out of bounds`);
    const comp = (b.readUInt16LE(2) & 0x20) !== 0;
    return { name: b.subarray(76, 76 + len).toString(comp ? 'latin1' : 'utf16le'), body: b };
  }

  children(node: HiveNode): HiveNode[] {
    const { body } = this.nk(node.offset);
    const count = body.readUInt32LE(20);
    if (count === 0) return [];
    const out: HiveNode[] = [];
    const walk = (list: number, depth: number): void => {
      if (depth > 2) throw new HiveFormatError('subkey index nested too deeply');
      const b = this.cell(list);
      const sig = b.toString('latin1', 0, 2);
      const n = b.readUInt16LE(2);
      const step = sig === 'lf' || sig === 'lh' ? 8 : sig === 'li' || sig === 'ri' ? 4 : 0;
      if (!step || 4 + n * step > b.length) throw new HiveFormatError(`bad subkey list at ${list}`);
      for (let i = 0; i < n; i++) {
        const off = b.readUInt32LE(4 + i * step);
        if (sig === 'ri') walk(off, depth + 1);
        else out.push({ name: this.nk(off).name, offset: off });
      }
    };
    walk(body.readUInt32LE(28), 0);
    return out;
  }

  /** Child by name, case-insensitive like Windows. */
  child(node: HiveNode, name: string): HiveNode | undefined {
    const want = name.toUpperCase();
    return this.children(node).find((c) => c.name.toUpperCase() === want);
  }

  /** The key at a backslash path below the root ("ControlSet001\\Control"); undefined when absent. */
  key(path: string): HiveNode | undefined {
    let node: HiveNode | undefined = this.root;
    for (const part of path.split('\\').filter(Boolean)) {
      node = this.child(node, part);
      if (!node) return undefined;
    }
    return node;
  }

  values(node: HiveNode): Map<string, RawValue> {
    const { body } = this.nk(node.offset);
    const count = body.readUInt32LE(36);
    const out = new Map<string, RawValue>();
    if (count === 0) return out;
    const list = this.cell(body.readUInt32LE(40));
    if (count * 4 > list.length) throw new HiveFormatError('value list out of bounds');
    for (let i = 0; i < count; i++) {
      const v = this.cell(list.readUInt32LE(i * 4));
      if (v.length < 20 || v.toString('latin1', 0, 2) !== 'vk') throw new HiveFormatError('bad value record');
      const nameLen = v.readUInt16LE(2);
      if (20 + nameLen > v.length) throw new HiveFormatError('value name out of bounds');
      const name = v.subarray(20, 20 + nameLen).toString(v.readUInt16LE(16) & 1 ? 'latin1' : 'utf16le');
      const rawLen = v.readUInt32LE(4);
      const type = v.readUInt32LE(12);
      let data: Buffer;
      if (rawLen & 0x80000000) data = Buffer.from(v.subarray(8, 8 + Math.min(4, rawLen & 0x7fffffff)));
      else {
        const cell = this.cell(v.readUInt32LE(8));
        if (rawLen > MAX_CELL_DATA || rawLen > cell.length) data = Buffer.alloc(0); // big data: not read
        else data = Buffer.from(cell.subarray(0, rawLen));
      }
      out.set(name, { type, data });
    }
    return out;
  }

  /** A value by key path and name (case-insensitive), or undefined. */
  value(path: string, name: string): RawValue | undefined {
    const node = this.key(path);
    if (!node) return undefined;
    const want = name.toUpperCase();
    for (const [n, v] of this.values(node)) if (n.toUpperCase() === want) return v;
    return undefined;
  }
}
