/**
 * YAML sources with positions. Every loaded file keeps its parsed Document
 * and a LineCounter so that a JSON pointer found by validation can be turned
 * back into `file:line:col` (ignition correlates report paths the same way).
 */
import { isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node as YamlNode } from 'yaml';
import type { Diagnostic } from '../core/diagnostic.js';
import { HostFileError, readHostText } from '../util/host-file.js';
import { fastYaml } from './fast-yaml.js';
import { LIMITS } from './limits.js';
import { pointerSegments, toPointer } from './pointer.js';
import { documentData, nestingProblem } from './yaml-data.js';
import type { SourceFile } from '../core/machine.js';

export interface Position { readonly line: number; readonly col: number }

// Duplicate keys are found by documentData, in linear time: the library's own check
// (uniqueKeys) compares every key of a map with every other one.
const PARSE_OPTIONS = { uniqueKeys: false, prettyErrors: false, strict: true } as const;

/**
 * A source whose parsed Document (needed only to place a diagnostic) is dropped
 * after loading and parsed again on first use: a 10,000-machine inventory's
 * Document is hundreds of MB of nodes that every garbage collection would walk.
 * A text nested too deeply for the library's composer gets an empty Document.
 */
function sourceOf(file: string, text: string, lines: LineCounter, data: unknown, doc: Document.Parsed | undefined): SourceFile {
  let parsed = doc;
  return {
    file, text, lines, data,
    get doc(): Document.Parsed {
      return (parsed ??= parseDocument(nestingProblem(text) ? '' : text, PARSE_OPTIONS));
    },
  };
}

/** Files above this size drop their Document after loading and try the fast reader first. */
const BIG = 64 * 1024;

export function parseSource(file: string, text: string): { source: SourceFile; diagnostics: Diagnostic[] } {
  if (text.length > BIG) {
    // a big inventory in plain YAML: loaded without a Document (the library parses it only to place a diagnostic)
    const data = fastYaml(text);
    if (data !== undefined) return { source: sourceOf(file, text, lineStarts(text), data, undefined), diagnostics: [] };
  }
  const deep = nestingProblem(text);
  if (deep) {
    // the library's composer recurses once per level: it is not given such a text at all
    const lines = lineStarts(text);
    const pos = lines.linePos(deep.offset);
    return { source: sourceOf(file, text, lines, undefined, undefined), diagnostics: [{ severity: 'error', message: deep.message, path: deep.pointer, file, line: pos.line, col: pos.col }] };
  }
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, ...PARSE_OPTIONS });
  const diagnostics: Diagnostic[] = [];
  // After the first syntax error the parser's further errors are mostly its
  // own confusion (cascades); report the first, and count the rest.
  const [first, ...rest] = doc.errors;
  if (first) {
    const { message, offset } = explainYamlError(text, first.code, first.message, first.pos);
    const pos = lines.linePos(offset);
    const more = rest.length ? ` (${rest.length} more YAML error${rest.length > 1 ? 's' : ''} follow from it)` : '';
    diagnostics.push({ severity: 'error', message: message + more, path: '', file, line: pos.line, col: pos.col });
  }
  for (const w of doc.warnings) {
    const pos = lines.linePos(w.pos[0]);
    diagnostics.push({ severity: 'warning', message: yamlMessage(w.message), path: '', file, line: pos.line, col: pos.col });
  }
  let data: unknown;
  if (!doc.errors.length) {
    const loaded = documentData(doc);
    data = loaded.data;
    for (const p of loaded.problems) {
      const pos = lines.linePos(p.offset);
      diagnostics.push({ severity: 'error', message: p.message, path: p.pointer, file, line: pos.line, col: pos.col });
    }
  }
  // small files (profiles) keep their Document; big ones (inventories) parse it again if a diagnostic needs it
  return { source: sourceOf(file, text, lines, data, text.length <= BIG ? doc : undefined), diagnostics };
}

/** The line starts the library's parser records (offset 0 and after every newline). */
function lineStarts(text: string): LineCounter {
  const lines = new LineCounter();
  lines.addNewLine(0);
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) lines.addNewLine(i + 1);
  return lines;
}

export type SourceKind = 'profile' | 'inventory';

/** Why a file could not be read, for a message that names it ("is a FIFO (named pipe), not a regular file"). */
export class SourceReadError {
  constructor(readonly file: string, readonly reason: string) {}
}

/**
 * Read and parse a profile or inventory file. The file is read through
 * readHostText: a FIFO, a device or a file above the size limit is refused
 * without blocking or reading it whole.
 */
export function loadSource(file: string, kind: SourceKind = 'profile'): { source: SourceFile; diagnostics: Diagnostic[]; unreadable?: SourceReadError } {
  let text: string;
  try {
    text = readHostText(file, { maxBytes: kind === 'inventory' ? LIMITS.inventoryBytes : LIMITS.profileBytes, what: kind });
  } catch (err) {
    if (!(err instanceof HostFileError)) throw err;
    const lines = new LineCounter();
    return {
      source: { file, text: '', doc: parseDocument('', { lineCounter: lines }), lines, data: undefined },
      diagnostics: [{ severity: 'error', message: `cannot read: ${err.reason}`, path: '', file }],
      unreadable: new SourceReadError(file, err.reason),
    };
  }
  return parseSource(file, text);
}

/** First line of a yaml error, without the library's code-frame and position suffix. */
function yamlMessage(message: string): string {
  return message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
}

/** A clearer message and place for the yaml errors people make most. */
function explainYamlError(text: string, code: string, message: string, pos: [number, number]): { message: string; offset: number } {
  const plain = yamlMessage(message);
  if (/end with an? [}\]]/.test(plain)) {
    const close = plain.includes('}') ? '}' : ']';
    const opener = unclosedFlow(text, pos[0], close === '}' ? '{' : '[', close);
    if (opener !== undefined) return { message: `${plain}: this "${close === '}' ? '{' : '['}" is never closed`, offset: opener };
  }
  if (/without - indicator|must start at the same column|Nested mappings are not allowed in compact mappings/.test(plain)) {
    let at = pos[0];
    while (text[at] === ' ') at++;
    return { message: `${plain}: check the indentation of this line against its siblings`, offset: at };
  }
  return { message: plain, offset: Math.min(pos[0], Math.max(0, text.length - 1)) };
}

/** Offset of the last unmatched opener before `at` (quotes and comments skipped). */
function unclosedFlow(text: string, at: number, open: string, close: string): number | undefined {
  const stack: number[] = [];
  let quote: string | undefined;
  for (let i = 0; i < Math.min(at, text.length); i++) {
    const c = text[i]!;
    if (quote) { if (c === quote && text[i - 1] !== '\\') quote = undefined; continue; }
    if (c === '"' || c === "'") quote = c;
    else if (c === '#' && (i === 0 || /\s/.test(text[i - 1]!))) { const nl = text.indexOf('\n', i); i = nl < 0 ? text.length : nl; }
    else if (c === open) stack.push(i);
    else if (c === close) stack.pop();
  }
  return stack.pop();
}

export { pointerSegments, toPointer };

/**
 * Position of the node at a JSON pointer: the value node, or with `key: true`
 * the key of the last segment (for "unknown key" errors). When the pointer
 * goes deeper than the document, the deepest existing node is used.
 */
export function locate(source: SourceFile, pointer: string, options: { key?: boolean } = {}): Position {
  let node: unknown = source.doc.contents;
  let best: [number, number, number] | undefined = (node as YamlNode | null)?.range ?? undefined;
  for (const seg of pointerSegments(pointer)) {
    let next: unknown;
    let keyNode: unknown;
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && (isScalar(p.key) ? String(p.key.value) : String(p.key)) === seg);
      if (pair) { keyNode = pair.key; next = pair.value; }
    } else if (isSeq(node)) {
      next = node.items[Number(seg)];
    }
    if (next === undefined && keyNode === undefined) break;
    const range = (options.key && keyNode ? keyNode as YamlNode : (next ?? keyNode) as YamlNode | null)?.range;
    if (range) best = range;
    node = next;
  }
  if (!best) return { line: 1, col: 1 };
  const p = source.lines.linePos(best[0]);
  return { line: p.line, col: p.col };
}

/** Attach file/line/col to a diagnostic whose path is relative to this source. */
export function placeIn(source: SourceFile, d: Omit<Diagnostic, 'file' | 'line' | 'col'>, options: { key?: boolean } = {}): Diagnostic {
  const pos = locate(source, d.path, options);
  return { ...d, file: source.file, line: pos.line, col: pos.col };
}
