/**
 * A reader for the plain subset of YAML that big generated inventories are
 * written in (bench/make-inventory.ts, exports of a CMDB): block maps and
 * sequences, one-line flow maps and lists, plain, "double" and 'single'
 * quoted scalars, comments. For such a text it returns what the yaml library
 * (YAML 1.2 core schema, `strict`, duplicate keys refused) would load, about ten times
 * faster and without building a Document.
 *
 * It answers `undefined` for anything else, as soon as it is unsure: escapes,
 * anchors, tags, multi-line scalars or flow collections, duplicate keys, a
 * float, a tab, a `:` in a flow scalar, a reserved key (__proto__,
 * constructor, prototype), anything beyond LIMITS… The caller then parses
 * with the yaml library, which also explains every error. Maps are objects
 * without a prototype, as the library path makes them.
 * test/unit/fast-yaml.test.ts
 * checks it against the library on generated texts.
 */

import { LIMITS } from './limits.js';

type Value = null | boolean | number | string | Value[] | { [k: string]: Value };

class Bail extends Error {}
const bail = (): never => { throw new Bail(); };

// A key the library reads as the same string: no core-schema type, no indicator, no reserved name.
const KEY = /^[A-Za-z_][A-Za-z0-9_-]*$/;
const NOT_STRING_KEY = /^(?:[Nn]ull|NULL|[Tt]rue|TRUE|[Ff]alse|FALSE|__proto__|constructor|prototype)$/;
// Texts only of characters the subset knows: printable ASCII, newline, and non-ASCII other than BOM/NEL/LS/PS.
const FOREIGN = /[\x00-\x09\x0b-\x1f\x7f\x85\u2028\u2029\ufeff]/;

interface Line { readonly indent: number; readonly text: string }

/** The loaded data of `text`, or undefined when it is not (sure to be) in the subset. */
export function fastYaml(text: string): unknown {
  if (FOREIGN.test(text)) return undefined;
  const lines: Line[] = [];
  for (const raw of text.split('\n')) {
    let indent = 0;
    while (raw.charCodeAt(indent) === 32) indent++;
    const body = raw.slice(indent);
    if (body === '' || body[0] === '#') continue; // blank and comment lines
    lines.push({ indent, text: body });
  }
  if (!lines.length || lines[0]!.indent !== 0) return undefined;
  try {
    const r = new Reader(lines);
    const value = r.block(0);
    if (r.at < lines.length) return undefined;
    return value;
  } catch (err) {
    if (err instanceof Bail) return undefined;
    throw err;
  }
}

class Reader {
  at = 0;
  constructor(private readonly lines: readonly Line[]) {}

  /** Maps and lists open around the one being read (bounded by LIMITS.depth). */
  depth = 0;

  /** A block map or sequence whose lines start at column `indent`. */
  block(indent: number): Value {
    const first = this.lines[this.at]!;
    if (first.indent !== indent) bail();
    return isItem(first.text) ? this.seq(indent) : this.map(indent, undefined);
  }

  enter(): void { if (++this.depth > LIMITS.depth) bail(); }

  /** Block map at `indent`; `firstText` is its first entry when it starts after a "- " of a sequence. */
  map(indent: number, firstText: string | undefined): Record<string, Value> {
    this.enter();
    const out = Object.create(null) as Record<string, Value>;
    let keys = 0;
    let text: string = firstText ?? this.lines[this.at++]!.text;
    for (;;) {
      const colon = keyEnd(text);
      if (colon < 0) bail();
      const key = text.slice(0, colon);
      if (!KEY.test(key) || NOT_STRING_KEY.test(key) || Object.hasOwn(out, key) || ++keys > LIMITS.mapKeys || key.length > LIMITS.keyLength) bail();
      const rest = text.slice(colon + 1);
      if (isEmpty(rest)) {
        // the value is on the next lines: deeper, or a sequence at the same column, or nothing (null)
        const next: Line | undefined = this.lines[this.at];
        if (next && next.indent > indent) out[key] = this.block(next.indent);
        else if (next && next.indent === indent && isItem(next.text)) out[key] = this.seq(indent);
        else out[key] = null;
      } else {
        if (rest[0] !== ' ') bail();
        out[key] = inlineValue(rest, 1, 'block', this.depth);
      }
      const next: Line | undefined = this.lines[this.at];
      if (!next || next.indent < indent) { this.depth--; return out; }
      if (next.indent > indent || isItem(next.text)) bail();
      text = next.text;
      this.at++;
    }
  }

  /** Block sequence of "- " items at `indent`. */
  seq(indent: number): Value[] {
    this.enter();
    const out: Value[] = [];
    for (;;) {
      const line = this.lines[this.at]!;
      if (!isItem(line.text) || line.text.length < 3) bail(); // "-" alone (value on the next lines): not here
      this.at++;
      let i = 1;
      while (line.text[i] === ' ') i++;
      const rest = line.text.slice(i);
      if (rest[0] === '-' || rest[0] === '#') bail();
      // "- key: value": a map whose column is that of its first key
      out.push(keyEnd(rest) >= 0 ? this.map(indent + i, rest) : inlineValue(line.text, i, 'block', this.depth));
      const next = this.lines[this.at];
      if (!next || next.indent < indent) { this.depth--; return out; }
      if (next.indent > indent || !isItem(next.text)) {
        if (next.indent === indent) { this.depth--; return out; } // the parent map goes on at this column
        bail();
      }
    }
  }
}

const isItem = (text: string): boolean => text[0] === '-' && (text.length === 1 || text[1] === ' ');
const isEmpty = (rest: string): boolean => /^ *(?:#.*)?$/.test(rest) && !/^#/.test(rest);

/** Index of the ":" ending a plain block key at the start of `text` ("key:" or "key: …"), else -1. */
function keyEnd(text: string): number {
  const m = /^[A-Za-z_][A-Za-z0-9_-]*:(?: |$)/.exec(text);
  return m ? m[0].indexOf(':') : -1;
}

/** The value written in `text` from `i` to the end of the line (block) — a comment may follow. */
function inlineValue(text: string, i: number, _ctx: 'block', depth: number): Value {
  const p = new Inline(text, i, depth);
  p.spaces();
  const c = text[p.i];
  let v: Value;
  if (c === '{' || c === '[' || c === '"' || c === "'") {
    v = p.value();
    p.spaces();
    p.endOfLine();
  } else {
    // a plain scalar runs to the end of the line or to a " #" comment
    let end = text.indexOf(' #', p.i);
    if (end < 0) end = text.length;
    const raw = text.slice(p.i, end).trimEnd();
    if (/: |:$/.test(raw) || / #/.test(raw) || raw.length > LIMITS.stringLength) bail();
    v = plain(raw);
  }
  return v;
}

class Inline {
  constructor(readonly s: string, public i: number, private depth: number) {}
  spaces(): void { while (this.s[this.i] === ' ') this.i++; }
  endOfLine(): void {
    if (this.i === this.s.length) return;
    if (this.s[this.i] === '#' && this.s[this.i - 1] === ' ') return;
    bail();
  }
  value(): Value {
    const c = this.s[this.i];
    if (c === '{') return this.flowMap();
    if (c === '[') return this.flowSeq();
    if (c === '"') return this.quoted('"');
    if (c === "'") return this.quoted("'");
    return this.flowPlain();
  }
  quoted(q: string): string {
    const end = this.s.indexOf(q, this.i + 1);
    if (end < 0) bail();
    const body = this.s.slice(this.i + 1, end);
    if (q === '"' && body.includes('\\')) bail(); // escapes: the library
    if (q === "'" && this.s[end + 1] === "'") bail(); // '' inside single quotes
    if (body.length > LIMITS.stringLength) bail();
    this.i = end + 1;
    return body;
  }
  /** A plain scalar inside a flow collection: up to , } ] (no ":" or "#" at all, no other indicators). */
  flowPlain(): Value {
    const start = this.i;
    while (this.i < this.s.length && !',}]'.includes(this.s[this.i]!)) {
      if (':#{['.includes(this.s[this.i]!)) bail();
      this.i++;
    }
    return plain(this.s.slice(start, this.i).trimEnd());
  }
  flowMap(): Record<string, Value> {
    if (++this.depth > LIMITS.depth) bail();
    const out = Object.create(null) as Record<string, Value>;
    let keys = 0;
    this.i++;
    this.spaces();
    if (this.s[this.i] === '}') { this.i++; this.depth--; return out; }
    for (;;) {
      const m = /^[A-Za-z_][A-Za-z0-9_-]*: /.exec(this.s.slice(this.i, this.i + 200));
      if (!m) bail();
      const key = m![0].slice(0, -2);
      if (NOT_STRING_KEY.test(key) || Object.hasOwn(out, key) || ++keys > LIMITS.mapKeys) bail();
      this.i += m![0].length;
      this.spaces();
      const c = this.s[this.i];
      if (c === ',' || c === '}' || c === undefined) bail(); // an empty value
      out[key] = this.value();
      this.spaces();
      const sep = this.s[this.i++];
      if (sep === '}') { this.depth--; return out; }
      if (sep !== ',') bail();
      this.spaces();
      if (this.s[this.i] === '}' || this.s[this.i] === ',') bail(); // trailing or doubled comma
    }
  }
  flowSeq(): Value[] {
    if (++this.depth > LIMITS.depth) bail();
    const out: Value[] = [];
    this.i++;
    this.spaces();
    if (this.s[this.i] === ']') { this.i++; this.depth--; return out; }
    for (;;) {
      const c = this.s[this.i];
      if (c === ',' || c === ']' || c === undefined) bail();
      out.push(this.value());
      this.spaces();
      const sep = this.s[this.i++];
      if (sep === ']') { this.depth--; return out; }
      if (sep !== ',') bail();
      this.spaces();
      if (this.s[this.i] === ']' || this.s[this.i] === ',') bail();
    }
  }
}

// The core schema's other number forms (yaml/dist/schema/core: intOct, intHex, floatNaN, floatExp, float).
const OTHER_NUMBERS = [/^0o[0-7]+$/, /^0x[0-9a-fA-F]+$/, /^(?:[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN)$/, /^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+$/, /^[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)$/];

/**
 * A plain scalar as the core schema reads it: null, booleans and decimal integers;
 * any other number form (octal, hex, floats, .inf) is left to the library; the rest
 * is a string, unless it starts with an indicator.
 */
function plain(raw: string): Value {
  if (raw === '' || raw.length > LIMITS.stringLength) bail();
  if (/^[-?:,[\]{}#&*!|>'"%@`]/.test(raw) && !/^-[0-9]/.test(raw)) bail();
  if (/^(?:~|[Nn]ull|NULL)$/.test(raw)) return null;
  if (/^(?:[Tt]rue|TRUE)$/.test(raw)) return true;
  if (/^(?:[Ff]alse|FALSE)$/.test(raw)) return false;
  if (/^[-+]?[0-9]+$/.test(raw)) return parseInt(raw, 10);
  if (OTHER_NUMBERS.some((re) => re.test(raw))) bail();
  return raw;
}
