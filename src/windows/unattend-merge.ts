/**
 * windows.unattend: merge: the master's own Panther\unattend.xml keeps its
 * settings (CopyProfile, its LocalAccounts...) and ours override only what
 * the profile sets. Unattend files are plain XML (no DTD, no entities beyond
 * the predefined ones), so a small tree parser is enough: it keeps every
 * node's source text, and the merged file is the master's text with our
 * elements put in.
 *
 * Merge rules, from the root down: a `settings` element matches the one of
 * the same `pass`, a `component` the one of the same `name`. Below a
 * component, an element of ours matches the master's of the same name: when
 * both hold only elements (containers: OOBE, UserAccounts, Identification)
 * their children merge the same way; anything else (a value, a list) is
 * replaced by ours. In a list (children with wcm:action), an entry of ours
 * replaces the master's entry with the same key (wcm:keyValue, or the text
 * of its Name, Identifier or Order) and the others are kept. What we do not
 * have is kept as the master wrote it.
 */
import { GhostprepError } from '../util/errors.js';

interface XmlElement {
  readonly kind: 'element';
  readonly name: string;
  readonly attrs: Record<string, string>;
  /** Source text of the start tag ("<OOBE>"), and of the end tag ('' for a self-closing one). */
  readonly open: string;
  readonly close: string;
  children: XmlNode[];
}
type XmlNode = XmlElement | { readonly kind: 'text'; readonly text: string };

const NAME = /^[A-Za-z_:][-A-Za-z0-9_:.]*/;

/** Parse an XML document into its prolog text and root element; throws on anything malformed. */
function parse(xml: string): { prolog: string; root: XmlElement; epilog: string } {
  let i = 0;
  const fail = (why: string): never => {
    const line = xml.slice(0, i).split('\n').length;
    throw new Error(`line ${line}: ${why}`);
  };
  const skipMisc = (): void => {
    for (;;) {
      const m = /^\s+/.exec(xml.slice(i));
      if (m) i += m[0].length;
      if (xml.startsWith('<?', i)) i = end('?>');
      else if (xml.startsWith('<!--', i)) i = end('-->');
      else if (xml.startsWith('<!DOCTYPE', i)) fail('a DOCTYPE is not expected in an answer file');
      else return;
    }
  };
  const end = (marker: string): number => {
    const j = xml.indexOf(marker, i);
    if (j < 0) fail(`unterminated ${xml.slice(i, i + 4)}`);
    return j + marker.length;
  };
  const element = (): XmlElement => {
    const start = i;
    i++;
    const name = NAME.exec(xml.slice(i))?.[0] ?? fail('element name expected');
    i += name.length;
    const attrs: Record<string, string> = {};
    for (;;) {
      const ws = /^\s*/.exec(xml.slice(i))![0];
      i += ws.length;
      if (xml.startsWith('/>', i)) {
        i += 2;
        return { kind: 'element', name, attrs, open: xml.slice(start, i), close: '', children: [] };
      }
      if (xml[i] === '>') {
        i++;
        break;
      }
      const m = /^([A-Za-z_:][-A-Za-z0-9_:.]*)\s*=\s*("([^"<]*)"|'([^'<]*)')/.exec(xml.slice(i));
      if (!m || !ws) fail(`bad attribute in <${name}>`);
      attrs[m![1]!] = m![3] ?? m![4] ?? '';
      i += m![0].length;
    }
    const open = xml.slice(start, i);
    const children: XmlNode[] = [];
    for (;;) {
      if (i >= xml.length) fail(`<${name}> is not closed`);
      if (xml.startsWith('</', i)) {
        const m = /^<\/([^\s>]+)\s*>/.exec(xml.slice(i));
        if (!m || m[1] !== name) fail(`</${m?.[1] ?? '?'}> does not close <${name}>`);
        const close = m![0];
        i += close.length;
        return { kind: 'element', name, attrs, open, close, children };
      }
      if (xml.startsWith('<!--', i)) {
        const s = i;
        i = end('-->');
        children.push({ kind: 'text', text: xml.slice(s, i) });
      } else if (xml.startsWith('<![CDATA[', i)) {
        const s = i;
        i = end(']]>');
        children.push({ kind: 'text', text: xml.slice(s, i) });
      } else if (xml.startsWith('<?', i)) {
        const s = i;
        i = end('?>');
        children.push({ kind: 'text', text: xml.slice(s, i) });
      } else if (xml[i] === '<') {
        children.push(element());
      } else {
        const j = xml.indexOf('<', i);
        const text = xml.slice(i, j < 0 ? xml.length : j);
        if (/&(?!(?:amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);)/.test(text)) fail('an unknown entity reference');
        children.push({ kind: 'text', text });
        i += text.length;
      }
    }
  };
  skipMisc();
  const prolog = xml.slice(0, i);
  if (xml[i] !== '<') fail('no root element');
  const root = element();
  const rest = i;
  skipMisc();
  if (i < xml.length) fail('text after the root element');
  return { prolog, root, epilog: xml.slice(rest) };
}

function serialize(n: XmlNode): string {
  if (n.kind === 'text') return n.text;
  if (!n.close) return n.open;
  return n.open + n.children.map(serialize).join('') + n.close;
}

const local = (name: string): string => name.slice(name.indexOf(':') + 1);
const elements = (e: XmlElement): XmlElement[] => e.children.filter((c): c is XmlElement => c.kind === 'element');
const textOf = (e: XmlElement): string => e.children.map((c) => (c.kind === 'text' ? c.text : textOf(c))).join('').trim();

/** The identity of an element among its siblings, for matching ours to the master's. */
function keyOf(e: XmlElement, level: number): string {
  if (level === 0 && local(e.name) === 'settings') return `settings|${e.attrs.pass ?? ''}`;
  if (level === 1 && local(e.name) === 'component') return `component|${e.attrs.name ?? ''}`;
  if (hasAction(e)) {
    const keyValue = Object.entries(e.attrs).find(([a]) => local(a) === 'keyValue')?.[1];
    if (keyValue !== undefined) return `${local(e.name)}|key=${keyValue}`;
    for (const k of ['Name', 'Identifier', 'Order']) {
      const c = elements(e).find((x) => local(x.name) === k);
      if (c) return `${local(e.name)}|${k}=${textOf(c).toLowerCase()}`;
    }
    return `${local(e.name)}|entry:${textOf(e)}`;
  }
  return local(e.name);
}

const hasAction = (e: XmlElement): boolean => Object.keys(e.attrs).some((a) => local(a) === 'action');
/** Only elements inside (whitespace between them): a container whose children merge one by one. */
const container = (e: XmlElement): boolean => elements(e).length > 0 && e.children.every((c) => c.kind === 'element' || !c.text.trim());

/** Append `o` as the last child of `master`, indented like its other children. */
function append(master: XmlElement, o: XmlElement): void {
  const last = master.children.at(-1);
  const closing = last?.kind === 'text' && /^\s*$/.test(last.text) ? last.text : '';
  const first = master.children[0];
  const childIndent = first?.kind === 'text' && /^\s+$/.test(first.text) && elements(master).length ? first.text : (closing || '\n') + '  ';
  if (closing) master.children.splice(master.children.length - 1, 0, { kind: 'text', text: childIndent }, o);
  else master.children.push({ kind: 'text', text: childIndent }, o, { kind: 'text', text: '\n' });
}

/** Put `ours` into `master` (same element) following the rules above. */
function mergeInto(master: XmlElement, ours: XmlElement, level: number): void {
  const masterKids = elements(master);
  for (const o of elements(ours)) {
    const key = keyOf(o, level);
    const hit = masterKids.find((m) => keyOf(m, level) === key);
    if (!hit) append(master, o);
    else if (level < 2) mergeInto(hit, o, level + 1);
    else if (!hasAction(o) && container(hit) && container(o)) mergeInto(hit, o, level + 1);
    else master.children[master.children.indexOf(hit)] = o;
  }
}

/** The master's unattend.xml with ours merged in (see the rules above); a master file that is not XML is refused, naming it. */
export function mergeUnattend(masterXml: string, oursXml: string, file: string): string {
  let master: ReturnType<typeof parse>;
  try {
    master = parse(masterXml.replace(/^\uFEFF/, ''));
  } catch (err) {
    throw new GhostprepError(`${file}: the master's unattend.xml cannot be merged (${(err as Error).message}); fix it on the master, or use windows.unattend: replace`);
  }
  const ours = parse(oursXml);
  if (local(master.root.name) !== 'unattend') throw new GhostprepError(`${file}: the master's file is not an answer file (root <${master.root.name}>, not <unattend>); use windows.unattend: replace`);
  // our namespace declarations (wcm:) must be known where our elements land
  const wcm = ours.root.attrs['xmlns:wcm'];
  let root = master.root;
  if (wcm && !master.root.attrs['xmlns:wcm']) {
    root = { ...master.root, attrs: { ...master.root.attrs, 'xmlns:wcm': wcm }, open: master.root.open.replace(/(\/?>)$/, ` xmlns:wcm="${wcm}"$1`) };
  }
  mergeInto(root, ours.root, 0);
  return master.prolog + serialize(root) + master.epilog;
}
