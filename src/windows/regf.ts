/**
 * The Windows registry hive file format ("regf"), as documented publicly
 * (Joachim Metz's libregf notes, hivex's lib/hivex-internal.h): a 4 KiB
 * base block, then hive bins ("hbin", multiples of 4 KiB) holding cells.
 * A cell is a signed 32-bit size (negative when allocated, 8-byte aligned)
 * followed by a record: "nk" key node, "vk" value, "sk" security, "lh"
 * subkey list, or a bare value list / data cell.
 *
 * `HiveReader` reads one (bounds-checked: the guest's hive is untrusted
 * input); writing new hives is left to the tests' helper. Editing existing
 * hives is left to hivex (see hive.ts): it keeps everything we do not model
 * (security descriptors, class names, big data, logs).
 */
import type { RegistryValue } from '../core/file-change.js';

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
