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
import { isAlias, isMap, isPair, isScalar, isSeq, Parser, type CST, type Document, type Node as YamlNode } from 'yaml';
import { FORBIDDEN_KEYS, forbiddenKeyMessage, LIMITS } from './limits.js';
import { toPointer } from './pointer.js';

/** A problem of the data, at a character offset of the text and a JSON pointer of the data. */
export interface DataProblem { readonly offset: number; readonly pointer: string; readonly message: string }

function tooDeep(): string {
  return `nested more than ${LIMITS.depth} levels deep (maps and lists inside each other)`;
}

/** The first place where maps and lists nest deeper than the limit, or undefined. */
export function nestingProblem(text: string): DataProblem | undefined {
  const stack: Array<{ token: CST.Token | null | undefined; depth: number }> = [];
  for (const top of new Parser().parse(text)) {
    if (top.type === 'document') stack.push({ token: top.value, depth: 0 });
    while (stack.length) {
      const { token, depth } = stack.pop()!;
      if (!token) continue;
      if (token.type === 'block-map' || token.type === 'block-seq' || token.type === 'flow-collection') {
        const level = depth + 1;
        if (level > LIMITS.depth) return { offset: token.type === 'flow-collection' ? token.start.offset : token.offset, pointer: '', message: tooDeep() };
        for (const item of token.items) {
          stack.push({ token: item.value, depth: level });
          if ('key' in item) stack.push({ token: item.key, depth: level });
        }
      }
    }
  }
  return undefined;
}

const MAX_PROBLEMS = 50;

class Budget extends Error {}

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
  /** Collections being converted (an alias to one of them would make the data infinite). */
  const open = new Set<YamlNode>();

  /** `alias`: offset of the alias being expanded, if any (limits met inside it are placed there). */
  const convert = (node: unknown, path: string[], depth: number, alias: number | undefined): unknown => {
    if (alias !== undefined && ++aliasValues > LIMITS.aliasValues) {
      report(alias, toPointer(path), `aliases here expand to more than ${LIMITS.aliasValues} values (an alias bomb?)`);
      throw new Budget();
    }
    if (node === null || node === undefined) return null;
    if (isScalar(node)) {
      const v = node.value;
      if (typeof v === 'string' && v.length > LIMITS.stringLength) {
        report(node.range?.[0] ?? 0, toPointer(path), `string of ${v.length} characters, more than the limit of ${LIMITS.stringLength}`);
        return null;
      }
      return v === undefined ? null : v;
    }
    if (isAlias(node)) {
      const at = node.range?.[0] ?? 0;
      const target = node.resolve(doc);
      if (!target) { report(at, toPointer(path), `alias *${node.source} names no anchor before it`); return null; }
      if (open.has(target)) { report(at, toPointer(path), `alias *${node.source} is inside the map or list it names (the data would be infinite)`); return null; }
      return convert(target, path, depth, alias ?? at);
    }
    const collection = node as YamlNode;
    const at = collection.range?.[0] ?? 0;
    if (isMap(node) || isSeq(node)) {
      if (depth + 1 > LIMITS.depth) { report(alias ?? at, toPointer(path), tooDeep()); return null; }
    }
    if (isSeq(node)) {
      open.add(node);
      const out = node.items.map((item, i) => convert(item, [...path, String(i)], depth + 1, alias));
      open.delete(node);
      return out;
    }
    if (isMap(node)) {
      if (node.items.length > LIMITS.mapKeys) { report(alias ?? at, toPointer(path), `map of ${node.items.length} keys, more than the limit of ${LIMITS.mapKeys}`); return null; }
      open.add(node);
      const out = Object.create(null) as Record<string, unknown>;
      for (const pair of node.items) {
        if (!isPair(pair)) continue;
        const keyNode = isAlias(pair.key) ? pair.key.resolve(doc) : pair.key;
        const keyAt = (pair.key as YamlNode | null)?.range?.[0] ?? at;
        if (keyNode !== null && keyNode !== undefined && !isScalar(keyNode)) {
          report(keyAt, toPointer(path), 'a key must be a plain value, not a map or a list');
          continue;
        }
        const raw = keyNode?.value;
        const key = raw === null || raw === undefined ? '' : String(raw);
        const here = [...path, key];
        if (FORBIDDEN_KEYS.has(key)) { report(keyAt, toPointer(here), forbiddenKeyMessage(key)); continue; }
        if (key.length > LIMITS.keyLength) { report(keyAt, toPointer(path), `key of ${key.length} characters, more than the limit of ${LIMITS.keyLength}`); continue; }
        if (Object.hasOwn(out, key)) { report(keyAt, toPointer(here), `duplicate key ${JSON.stringify(key)} (keys of a map must be unique)`); continue; }
        out[key] = convert(pair.value, here, depth + 1, alias);
      }
      open.delete(node);
      return out;
    }
    report(at, toPointer(path), 'a value of an unknown kind');
    return null;
  };

  let data: unknown;
  try {
    data = convert(doc.contents, [], 0, undefined);
  } catch (err) {
    if (!(err instanceof Budget)) throw err;
  }
  return problems.length ? { problems } : { data, problems };
}
