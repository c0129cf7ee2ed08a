/**
 * Handlebars in an isolated instance, strict (an unknown variable is an
 * error naming the template, line and variable) and without HTML escaping
 * (we write config files, not web pages). The instance reaches own
 * properties of the template data only and writes text only (see
 * strict-runtime.ts).
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { HostFileError, readHostText } from '../util/host-file.js';
import { createStrictHandlebars, TemplateDataError } from './strict-runtime.js';

export const TEMPLATE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../templates');

/** Directories searched for templates named by a profile: next to it, its sibling templates/, the bundled ones. */
export function templateDirs(profileFile: string): string[] {
  const dir = path.dirname(path.resolve(profileFile));
  return [path.join(dir, 'templates'), path.join(dir, '..', 'templates'), dir, TEMPLATE_DIR];
}

const hb = createStrictHandlebars();

/** Compile with the options every profile template gets (also for tests that compare against it). */
export function compileStrict(text: string): (ctx: unknown) => string {
  // `log` is no helper here, and Handlebars moves helperMissing and blockHelperMissing out of
  // the helper table: compiled as known helpers they would be called without a lookup
  return hb.compile(text, { strict: true, noEscape: true, knownHelpers: { log: false, helperMissing: false, blockHelperMissing: false } });
}

export class TemplateError extends Error {
  constructor(readonly template: string, readonly line: number, readonly col: number, readonly detail: string) {
    super(`${template}:${line}:${col}: ${detail}`);
  }
}

type Compiled = (ctx: unknown) => string;
const cache = new Map<string, Compiled>();

function compile(text: string): Compiled {
  let fn = cache.get(text);
  if (!fn) {
    fn = simpleTemplate(text) ?? compileStrict(text);
    if (cache.size > 10000) cache.clear();
    cache.set(text, fn);
  }
  return fn;
}

// `{{a.b}}`, `{{ site.dns.x-y }}`: a path of two or more plain segments (never a helper call, never `this`).
const HANDLEBARS_WORDS = new Set(['this', 'true', 'false', 'null', 'undefined', 'else']);
const SIMPLE_MUSTACHE = /\{\{\s*([A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z_][A-Za-z0-9_-]*)+)\s*\}\}/y;

/**
 * Most template strings of a profile are text around `{{machine.ip}}`-like paths. Such a
 * template is rendered here without Handlebars' runtime: each path is looked up through own
 * properties and must end at a string, number or boolean (or a present but null/undefined
 * value, which is written as nothing). Anything else — a missing key, a map or a list, an
 * inherited property, any other syntax — goes to the compiled template, so output and errors
 * stay exactly those of the strict instance.
 */
export function simpleTemplate(text: string): Compiled | undefined {
  if (text.includes('\0')) return undefined;
  const literals: string[] = [];
  const paths: string[][] = [];
  let from = 0;
  for (let at = text.indexOf('{{'); at >= 0; at = text.indexOf('{{', from)) {
    if (at > 0 && text[at - 1] === '\\') return undefined; // \{{ is an escaped mustache
    SIMPLE_MUSTACHE.lastIndex = at;
    const m = SIMPLE_MUSTACHE.exec(text);
    if (!m || text[at + m[0].length] === '}') return undefined; // `}}}` closes a triple-stash
    const segs = m[1]!.split('.');
    // words Handlebars' grammar reads otherwise (`{{a.this}}`: invalid path; `{{a.true}}`: parse error)
    if (segs.some((seg) => HANDLEBARS_WORDS.has(seg))) return undefined;
    literals.push(text.slice(from, at));
    paths.push(segs);
    from = at + m[0].length;
  }
  literals.push(text.slice(from));
  let full: Compiled | undefined;
  return (ctx: unknown): string => {
    let out = literals[0]!;
    for (let i = 0; i < paths.length; i++) {
      let v: unknown = ctx;
      for (const seg of paths[i]!) {
        if (v === null || typeof v !== 'object' || !Object.hasOwn(v, seg)) return (full ??= compileStrict(text))(ctx);
        v = (v as Record<string, unknown>)[seg];
      }
      if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') out += v as string;
      else if (v !== undefined && v !== null) return (full ??= compileStrict(text))(ctx);
      out += literals[i + 1]!;
    }
    return out;
  };
}

/** Render `text`; `name` identifies the template in errors (file path or "profile.yaml:/hostname"). */
export function renderTemplate(text: string, context: unknown, name: string): string {
  if (!text.includes('{{')) return text;
  try {
    return compile(text)(context);
  } catch (err) {
    throw explain(err as Error, text, name);
  }
}

/**
 * A string that is one single `{{path}}` expression keeps the type of the
 * value it names, so `addresses: "{{site.dns}}"` yields the list itself.
 */
const wholePaths = new Map<string, string[] | null>();

export function renderValue(text: string, context: unknown, name: string): unknown {
  let segs = wholePaths.get(text);
  if (segs === undefined) {
    const whole = /^\{\{\s*([A-Za-z_][\w]*(?:\.[A-Za-z_][\w-]*)*)\s*\}\}$/.exec(text);
    segs = whole ? whole[1]!.split('.') : null;
    if (wholePaths.size > 10000) wholePaths.clear();
    wholePaths.set(text, segs);
  }
  if (segs) {
    let v: unknown = context;
    // own properties only: anything else is left to renderTemplate, which reports it
    for (const s of segs) v = v !== null && typeof v === 'object' && Object.hasOwn(v, s) ? (v as Record<string, unknown>)[s] : undefined;
    if (v !== undefined && typeof v === 'object' && v !== null) return structuredClone(v);
    if (typeof v === 'number' || typeof v === 'boolean') return v;
  }
  return renderTemplate(text, context, name);
}

const identityFree = new Map<string, boolean>();

/**
 * Whether a template's output cannot depend on `machine.machineId`,
 * `machine.sshHostKeys` or `distro`: no path names them, and none takes a whole
 * object that holds them (`machine`, `this`, `@root`, `../`). Conservative: when in
 * doubt (a parse error, a partial), false. Decided once per template text.
 */
export function independentOfIdentity(text: string): boolean {
  let free = identityFree.get(text);
  if (free === undefined) {
    free = !text.includes('{{') || scanIndependent(text);
    if (identityFree.size > 10000) identityFree.clear();
    identityFree.set(text, free);
  }
  return free;
}

function scanIndependent(text: string): boolean {
  let ok = true;
  const visit = (node: unknown): void => {
    if (!ok || !node || typeof node !== 'object') return;
    const n = node as { type?: string; parts?: string[]; depth?: number; data?: boolean; original?: string };
    if (n.type === 'PartialStatement' || n.type === 'PartialBlockStatement' || n.type === 'DecoratorBlock' || n.type === 'Decorator') { ok = false; return; }
    if (n.type === 'PathExpression') {
      const parts = n.parts ?? [];
      const whole = n.data
        ? parts[0] === 'root' && (parts.length === 1 || (parts.length === 2 && parts[1] === 'machine')) // @root, @root.machine
        : parts.length === 0 || (parts.length === 1 && parts[0] === 'machine'); // this, ., machine
      if (whole || (n.depth ?? 0) > 0 || parts.some((p) => p === 'machineId' || p === 'sshHostKeys' || p === 'distro')) { ok = false; return; }
    }
    for (const v of Object.values(node)) if (v && typeof v === 'object') visit(v);
  };
  try { visit(hb.parse(text)); } catch { return false; }
  return ok;
}

// One run reads each template once, not once per machine (10,000 machines share a few templates).
const templateFiles = new Map<string, { file: string; text: string }>();

export function loadTemplateFile(name: string, dirs: readonly string[] = [TEMPLATE_DIR]): { file: string; text: string } {
  const key = `${name}\0${dirs.join('\0')}`;
  let found = templateFiles.get(key);
  if (!found) {
    found = findTemplateFile(name, dirs);
    templateFiles.set(key, found);
  }
  return found;
}

function findTemplateFile(name: string, dirs: readonly string[]): { file: string; text: string } {
  for (const dir of dirs) {
    const file = path.resolve(dir, name);
    try {
      // a regular file under the size cap: a FIFO, a device or a directory is an error, not a wait or an endless read
      return { file, text: readHostText(file, { what: 'template' }) };
    } catch (err) {
      if (!(err instanceof HostFileError && (err.code === 'ENOENT' || err.code === 'ENOTDIR'))) throw err;
    }
  }
  throw new Error(`template "${name}" not found in ${dirs.join(', ')}`);
}

/** A failure of rendering `text` (named `name` in messages) as a located TemplateError. */
export function explain(err: Error, text: string, name: string): TemplateError {
  if (err instanceof TemplateError) return err;
  if (err instanceof TemplateDataError) return explainData(err, text, name);
  const msg = err.message ?? String(err);
  const strict = /^"([^"]+)" not defined in .* - (\d+):(\d+)/.exec(msg);
  if (strict) {
    const at = expressionAt(text, Number(strict[2]), Number(strict[3]));
    return new TemplateError(name, at?.line ?? Number(strict[2]), at?.col ?? Number(strict[3]) + 1, `unknown variable "${at?.path ?? strict[1]}"`);
  }
  const unclosed = /got 'EOF'/.test(msg) ? unclosedBlock(text) : undefined;
  if (unclosed) return new TemplateError(name, unclosed.line, unclosed.col, `syntax error: {{#${unclosed.name}}} is never closed (no {{/${unclosed.name}}})`);
  const parse = /Parse error on line (\d+):\n([^\n]*)\n([^\n]*)\n(.*)/s.exec(msg);
  if (parse) {
    const caret = parse[3]!.indexOf('^');
    return new TemplateError(name, Number(parse[1]), Math.max(1, caret + 1), `syntax error: ${parse[4]!.split('\n')[0]}`);
  }
  const mismatch = /^(\S+) doesn't match (\S+) - (\d+):(\d+)/.exec(msg);
  if (mismatch) return new TemplateError(name, Number(mismatch[3]), Number(mismatch[4]) + 1, `syntax error: {{/${mismatch[2]}}} closes {{#${mismatch[1]}}}`);
  const missingHelper = /Missing helper: "([^"]+)"/.exec(msg);
  if (missingHelper) {
    const at = helperCallAt(text, missingHelper[1]!);
    return new TemplateError(name, at?.line ?? 1, at?.col ?? 1, `unknown helper "${missingHelper[1]}"${missingHelper[1] === 'log' ? ' (templates cannot print)' : ''}`);
  }
  return new TemplateError(name, 1, 1, msg.split('\n')[0]!);
}

/**
 * The dotted path (machine.nope) of the expression Handlebars complained
 * about, and where its `{{` starts, for a message that points at it.
 */
function expressionAt(text: string, line: number, col: number): { path: string; line: number; col: number } | undefined {
  let found: { path: string; line: number; col: number } | undefined;
  type Loc = { start: { line: number; column: number } };
  try {
    const visit = (node: unknown, stmt: Loc | undefined): void => {
      if (!node || typeof node !== 'object' || found) return;
      const n = node as { type?: string; loc?: Loc; original?: string };
      const here = n.type && /Statement$/.test(n.type) && n.loc ? n.loc : stmt;
      if (n.type === 'PathExpression' && n.loc && n.loc.start.line === line && n.loc.start.column === col) {
        const at = here ?? n.loc;
        found = { path: n.original ?? '', line: at.start.line, col: at.start.column + 1 };
        return;
      }
      for (const v of Object.values(node)) if (v && typeof v === 'object') visit(v, here);
    };
    visit(hb.parse(text), undefined);
  } catch { /* the parse error is reported elsewhere */ }
  return found;
}

/** The innermost block opened and never closed, for "unexpected end of template". */
function unclosedBlock(text: string): { name: string; line: number; col: number } | undefined {
  const stack: Array<{ name: string; index: number }> = [];
  for (const m of text.matchAll(/\{\{~?\s*([#^/])\s*>?\s*([\w.-]+)/g)) {
    if (m[1] === '/') {
      const i = stack.map((s) => s.name).lastIndexOf(m[2]!);
      if (i >= 0) stack.length = i;
    } else stack.push({ name: m[2]!, index: m.index! });
  }
  const open = stack.pop();
  if (!open) return undefined;
  const before = text.slice(0, open.index).split('\n');
  return { name: open.name, line: before.length, col: before[before.length - 1]!.length + 1 };
}

type AstLoc = { start: { line: number; column: number }; end: { line: number; column: number } };

/** A TemplateDataError (strict-runtime.ts) as a located message. */
function explainData(err: TemplateDataError, text: string, name: string): TemplateError {
  const loc = err.loc;
  const line = loc?.start.line ?? 1;
  const col = (loc?.start.column ?? 0) + 1;
  switch (err.kind) {
    case 'unknown': {
      // the path expression at that place names the whole variable (machine.constructor)
      const at = loc ? expressionAt(text, loc.start.line, loc.start.column) : undefined;
      const shown = at?.path ?? err.variable;
      // `{{log x}}`, `{{nope a b}}`: strict mode looks the callee up as a variable; it is a helper name
      const call = helperCallAt(text, shown, true);
      if (call && at && call.line === at.line && call.col === at.col) return new TemplateError(name, at.line, at.col, `unknown helper "${shown}"${shown === 'log' ? ' (templates cannot print)' : ''}`);
      // `machine.constructor.name`: say which step failed
      const segs = at?.path.split('.') ?? [];
      const step = segs.lastIndexOf(err.variable);
      const inner = step > 0 && step < segs.length - 1 ? ` (no "${err.variable}" in ${segs.slice(0, step).join('.')})` : '';
      return new TemplateError(name, at?.line ?? line, at?.col ?? col, `unknown variable "${shown}"${inner}`);
    }
    case 'map':
    case 'list':
      return new TemplateError(name, line, col, `${sourceAt(text, loc) || 'a value'} is ${err.kind === 'map' ? 'a map' : 'a list'}, where text is needed (name one of its values${err.kind === 'list' ? ', or use {{join …}}' : ''}, or use {{json …}})`);
    case 'partial':
      return new TemplateError(name, line, col, 'syntax error: partials ({{> …}}) are not supported');
    case 'decorator':
      return new TemplateError(name, line, col, 'syntax error: decorators ({{* …}}) are not supported');
    default:
      return new TemplateError(name, line, col, `${sourceAt(text, loc) || 'a helper'}: ${err.detail}`);
  }
}

/** The template text of an expression (one line at most, shortened), for messages. */
function sourceAt(text: string, loc: AstLoc | { start: { line: number; column: number } } | undefined): string {
  if (!loc || !('end' in loc) || !loc.end) return '';
  const lines = text.split('\n');
  const s = loc.end.line === loc.start.line
    ? lines[loc.start.line - 1]?.slice(loc.start.column, loc.end.column) ?? ''
    : (lines[loc.start.line - 1]?.slice(loc.start.column) ?? '') + '…';
  return s.length > 60 ? s.slice(0, 57) + '…' : s;
}

/** Where the first call of helper `helper` starts, for "unknown helper". */
function helperCallAt(text: string, helper: string, withArguments = false): { line: number; col: number } | undefined {
  let found: { line: number; col: number } | undefined;
  const visit = (node: unknown): void => {
    if (!node || typeof node !== 'object' || found) return;
    const n = node as { type?: string; loc?: AstLoc; path?: { original?: string }; params?: unknown[]; hash?: unknown };
    if ((n.type === 'MustacheStatement' || n.type === 'BlockStatement' || n.type === 'SubExpression') && n.path?.original === helper && n.loc && (!withArguments || (n.params?.length ?? 0) > 0 || n.hash)) {
      found = { line: n.loc.start.line, col: n.loc.start.column + 1 };
      return;
    }
    for (const v of Object.values(node)) if (v && typeof v === 'object') visit(v);
  };
  try { visit(hb.parse(text)); } catch { /* the parse error is reported elsewhere */ }
  return found;
}
