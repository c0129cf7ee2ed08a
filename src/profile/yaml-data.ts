/**
 * From YAML text to the data ghostprep works on, within LIMITS:
 *
 * - `nestingProblem` measures the nesting depth on the parser's token tree
 *   (built without recursion) before the library composes a Document, whose
 *   recursive composer would exhaust the stack on a few hundred levels.
 * - `documentData` turns a parsed Document into prototype-free data (every
 *   map is an object without a prototype), refusing the reserved keys, keys
 *   that are maps or lists, aliases that expand beyond a budget or into
 *   themselves, and over-long strings, each at the node that holds it.
 */
import { isAlias, isMap, isPair, isScalar, isSeq, Parser, type Alias, type CST, type Document, type Node as YamlNode } from 'yaml';
import { FORBIDDEN_KEYS, forbiddenKeyMessage, LIMITS } from './limits.js';
import { toPointer } from './pointer.js';

/** A problem of the data, at a character offset of the text and a JSON pointer of the data. */
export interface DataProblem { readonly offset: number; readonly pointer: string; readonly message: string }

/** A path built as a chain (a pointer is spelled out only for a problem: a long one per value would cost as much as the data). */
interface Path { readonly up: Path | undefined; readonly key: string }
function pointerOf(path: Path | undefined): string {
  const keys: string[] = [];
  for (let p = path; p; p = p.up) keys.push(p.key);
  return toPointer(keys.reverse());
}

function tooDeep(): string {
  return `nested more than ${LIMITS.depth} levels deep (maps and lists inside each other)`;
}

/** The first place where maps and lists nest deeper than the limit, or undefined. */
export function nestingProblem(text: string): DataProblem | undefined {
  const stack: Array<{ token: CST.Token | null | undefined; depth: number; path: Path | undefined }> = [];
  for (const top of new Parser().parse(text)) {
    if (top.type === 'document') stack.push({ token: top.value, depth: 0, path: undefined });
    while (stack.length) {
      const { token, depth, path } = stack.pop()!;
      if (!token) continue;
      if (token.type === 'block-map' || token.type === 'block-seq' || token.type === 'flow-collection') {
        const level = depth + 1;
        if (level > LIMITS.depth) return { offset: token.type === 'flow-collection' ? token.start.offset : token.offset, pointer: pointerOf(path), message: tooDeep() };
        const isSeq = token.type === 'block-seq' || (token.type === 'flow-collection' && token.start.source === '[');
        // pushed last to first, so that the first place in the text beyond the limit is the one found
        for (let i = token.items.length - 1; i >= 0; i--) {
          const item = token.items[i]!;
          const key = 'key' in item ? item.key : undefined;
          stack.push({ token: item.value, depth: level, path: { up: path, key: isSeq ? String(i) : keyText(key) } });
          if (key) stack.push({ token: key, depth: level, path });
        }
      }
    }
  }
  return undefined;
}

/** The key a key token most likely loads as (only to name a place in a message). */
function keyText(token: CST.Token | null | undefined): string {
  if (!token) return '';
  if (token.type === 'scalar') return token.source;
  if (token.type === 'single-quoted-scalar') return token.source.slice(1, -1).replace(/''/g, "'");
  if (token.type === 'double-quoted-scalar') {
    try { return JSON.parse(token.source) as string; } catch { return token.source.slice(1, -1); }
  }
  return '?';
}

const MAX_PROBLEMS = 50;

class Budget extends Error {}

interface Place { readonly offset: number; readonly pointer: string }

/**
 * The data of a Document without errors, or the problems that keep it from
 * being loaded (then `data` is undefined: nothing refused reaches a caller).
 */
export function documentData(doc: Document.Parsed): { data?: unknown; problems: DataProblem[] } {
  const problems: DataProblem[] = [];
  const reported = new Set<string>();
  const report = (offset: number, pointer: string, message: string): void => {
    const key = `${offset}:${message}`;
    if (reported.has(key)) return;
    reported.add(key);
    problems.push({ offset, pointer, message });
    if (problems.length >= MAX_PROBLEMS) throw new Budget();
  };
  let aliasValues = 0;
  // the library finds an alias's anchor by walking the document: once per alias node, not per expansion
  const targets = new Map<Alias, YamlNode | undefined>();
  const resolveAlias = (alias: Alias): YamlNode | undefined => {
    if (!targets.has(alias)) targets.set(alias, alias.resolve(doc) as YamlNode | undefined);
    return targets.get(alias);
  };
  /** Collections being converted (an alias to one of them would make the data infinite). */
  const open = new Set<YamlNode>();

  /** `alias`: the outermost alias being expanded, if any (limits met inside it are placed there). */
  const convert = (node: unknown, path: Path | undefined, depth: number, alias: Place | undefined): unknown => {
    if (alias !== undefined && ++aliasValues > LIMITS.aliasValues) {
      report(alias.offset, alias.pointer, `aliases here expand to more than ${LIMITS.aliasValues} values (an alias bomb?)`);
      throw new Budget();
    }
    if (node === null || node === undefined) return null;
    if (isScalar(node)) {
      const v = node.value;
      if (typeof v === 'string' && v.length > LIMITS.stringLength) {
        report(node.range?.[0] ?? 0, pointerOf(path), `string of ${v.length} characters, more than the limit of ${LIMITS.stringLength}`);
        return null;
      }
      return v === undefined ? null : v;
    }
    if (isAlias(node)) {
      const at = node.range?.[0] ?? 0;
      const target = resolveAlias(node);
      if (!target) { report(at, pointerOf(path), `alias *${node.source} names no anchor before it`); return null; }
      if (open.has(target)) { report(at, pointerOf(path), `alias *${node.source} is inside the map or list it names (the data would be infinite)`); return null; }
      return convert(target, path, depth, alias ?? { offset: at, pointer: pointerOf(path) });
    }
    const collection = node as YamlNode;
    const at = collection.range?.[0] ?? 0;
    if (isMap(node) || isSeq(node)) {
      if (depth + 1 > LIMITS.depth) { report(alias?.offset ?? at, alias?.pointer ?? pointerOf(path), tooDeep()); return null; }
    }
    if (isSeq(node)) {
      open.add(node);
      const out = node.items.map((item, i) => convert(item, { up: path, key: String(i) }, depth + 1, alias));
      open.delete(node);
      return out;
    }
    if (isMap(node)) {
      if (node.items.length > LIMITS.mapKeys) { report(alias?.offset ?? at, alias?.pointer ?? pointerOf(path), `map of ${node.items.length} keys, more than the limit of ${LIMITS.mapKeys}`); return null; }
      open.add(node);
      const out = Object.create(null) as Record<string, unknown>;
      for (const pair of node.items) {
        if (!isPair(pair)) continue;
        const keyNode = isAlias(pair.key) ? resolveAlias(pair.key) : pair.key;
        const keyAt = (pair.key as YamlNode | null)?.range?.[0] ?? at;
        if (keyNode !== null && keyNode !== undefined && !isScalar(keyNode)) {
          report(keyAt, pointerOf(path), 'a key must be a plain value, not a map or a list');
          continue;
        }
        const raw = keyNode?.value;
        const key = raw === null || raw === undefined ? '' : String(raw);
        const here: Path = { up: path, key };
        if (FORBIDDEN_KEYS.has(key)) { report(keyAt, pointerOf(here), forbiddenKeyMessage(key)); continue; }
        if (key.length > LIMITS.keyLength) { report(keyAt, pointerOf(path), `key of ${key.length} characters, more than the limit of ${LIMITS.keyLength}`); continue; }
        if (Object.hasOwn(out, key)) { report(keyAt, pointerOf(here), `duplicate key ${JSON.stringify(key)} (keys of a map must be unique)`); continue; }
        out[key] = convert(pair.value, here, depth + 1, alias);
      }
      open.delete(node);
      return out;
    }
    report(at, pointerOf(path), 'a value of an unknown kind');
    return null;
  };

  let data: unknown;
  try {
    data = convert(doc.contents, undefined, 0, undefined);
  } catch (err) {
    if (!(err instanceof Budget)) throw err;
  }
  return problems.length ? { problems } : { data, problems };
}
