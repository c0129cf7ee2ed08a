/**
 * The Handlebars instance profiles are rendered with, closed by construction:
 *
 * - every name a template looks up (`a.b.c`, `this.x`, `@root.x`, block
 *   params, helper arguments, `#with`/`#each` subjects, `lookup`) is resolved
 *   by one function that returns own properties only. A name that an object
 *   inherits (`constructor`, `__proto__`, `toString`, `hasOwnProperty`…) is an
 *   unknown variable wherever it appears, so no template reaches a prototype
 *   or a function;
 * - a value written into the output must be text (a string, number or
 *   boolean): a map or a list is an error located at its `{{…}}`, never
 *   `[object Object]` or `a,b`;
 * - only the documented helpers and the block helpers `if`, `unless`, `each`,
 *   `with` and `lookup` exist: no `log`, no partials, no decorators: nothing a
 *   template can do prints, or reaches outside the template data.
 *
 * The generated code calls these functions through the instance's helper
 * table, under names holding a NUL character that no profile template uses;
 * a template that spelled one would only get one more own-property lookup or
 * text check.
 */
import Handlebars from 'handlebars';
import { HELPERS, TemplateDataError, type Loc } from './helpers.js';

export { TemplateDataError } from './helpers.js';

const OWN = 'ghostprep own lookup\0';
const TEXT = 'ghostprep text\0';

type HB = typeof Handlebars;

/** Keys a value inherits rather than holds: a prototype reach, refused even where a missing key is allowed. */
function inherited(parent: unknown, name: string): boolean {
  return name in Object(parent) && !Object.hasOwn(Object(parent), name);
}

/**
 * One step of a path. `required`: the path is a value written out (`{{a.b}}`),
 * so a missing key is an error too (Handlebars' strict mode); in helper
 * arguments and block subjects a missing key is `undefined` (`{{#if vars.gpu}}`).
 */
export function ownLookup(parent: unknown, name: string, required: boolean, loc: Loc | undefined): unknown {
  if (parent === null || parent === undefined) {
    if (required) throw new TemplateDataError('unknown', name, loc);
    return undefined;
  }
  if (inherited(parent, name)) throw new TemplateDataError('unknown', name, loc);
  if (!Object.hasOwn(Object(parent), name)) {
    if (required) throw new TemplateDataError('unknown', name, loc);
    return undefined;
  }
  const v = (parent as Record<string, unknown>)[name];
  // template data is parsed YAML: a function can only be something else's
  if (typeof v === 'function') throw new TemplateDataError('unknown', name, loc);
  return v;
}

/** What a `{{…}}` writes out: text only. */
export function textOf(v: unknown, loc: Loc | undefined): unknown {
  if (v === null || v === undefined || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return v;
  if (v instanceof Handlebars.SafeString) return v;
  throw new TemplateDataError(Array.isArray(v) ? 'list' : 'map', '', loc);
}

/** The own-property `lookup` helper: `{{lookup vars "rack"}}`, undefined when missing, an error for an inherited name. */
function lookupHelper(...args: unknown[]): unknown {
  const options = args[args.length - 1] as { loc?: Loc };
  if (args.length !== 3) throw new TemplateDataError('argument', '', options.loc, 'lookup takes a value and a name: {{lookup vars "rack"}}');
  const [obj, field] = args;
  if (obj === null || obj === undefined) return undefined;
  const name = String(field);
  if (typeof field !== 'string' && typeof field !== 'number') throw new TemplateDataError('unknown', name, options.loc);
  return ownLookup(obj, name, false, options.loc);
}

export function createStrictHandlebars(): HB {
  const hb = Handlebars.create();
  // nothing prints: no `log` helper, and Handlebars' own logger says nothing
  hb.unregisterHelper('log');
  (hb as unknown as { log: () => void }).log = () => undefined;
  hb.registerHelper('lookup', lookupHelper as Handlebars.HelperDelegate);
  for (const h of HELPERS) {
    // Handlebars passes an options object last: its `loc` places an argument error
    hb.registerHelper(h.name, (...args: unknown[]) => {
      const options = args[args.length - 1] as { loc?: Loc };
      try {
        return h.fn(...args.slice(0, -1));
      } catch (err) {
        if (err instanceof TemplateDataError && !err.loc) throw new TemplateDataError(err.kind, err.variable, options.loc, `${h.name}: ${err.detail}`);
        throw err;
      }
    });
  }
  // Handlebars' own helpers, called the wrong way (`{{with machine}}` without a block, one
  // argument too few), fail with a TypeError: each becomes a located template error instead
  const blocks = new Set(['if', 'unless', 'with', 'each']);
  for (const [name, fn] of Object.entries(hb.helpers)) {
    if (name === OWN || name === TEXT) continue;
    hb.registerHelper(name, function (this: unknown, ...args: unknown[]) {
      const options = args[args.length - 1] as { loc?: Loc; fn?: unknown } | undefined;
      if (blocks.has(name) && typeof options?.fn !== 'function') throw new TemplateDataError('argument', '', options?.loc, `${name} is a block helper: {{#${name} …}}…{{/${name}}}`);
      try {
        return (fn as (...a: unknown[]) => unknown).apply(this, args);
      } catch (err) {
        if (err instanceof TemplateDataError || err instanceof Handlebars.Exception) throw err;
        throw new TemplateDataError('argument', '', options?.loc, `${name}: ${(err as Error).message}`);
      }
    });
  }
  hb.registerHelper(OWN, ownLookup as unknown as Handlebars.HelperDelegate);
  hb.registerHelper(TEXT, textOf as unknown as Handlebars.HelperDelegate);
  (hb as unknown as { JavaScriptCompiler: unknown }).JavaScriptCompiler = StrictCompiler;
  return hb;
}

type Code = unknown;
/** The parts of Handlebars' JavaScriptCompiler (its documented extension point) used here. */
interface Compiler {
  options: { strict?: boolean };
  source: { currentLocation?: Loc };
  popStack(): Code;
  push(expr: Code): Code;
  quotedString(s: string): string;
  aliasable(name: string): Code;
}
type CompilerClass = { new (): Compiler; prototype: Compiler & Record<string, unknown> };

const locLiteral = (c: Compiler): string => (c.source.currentLocation ? JSON.stringify({ start: c.source.currentLocation.start, end: c.source.currentLocation.end }) : 'undefined');
const helperFn = (c: Compiler, name: string): Code => c.aliasable(`container.helpers[${JSON.stringify(name)}]`);

const Base = (Handlebars as unknown as { JavaScriptCompiler: CompilerClass }).JavaScriptCompiler;
const baseAppend = Base.prototype.append as (this: Compiler) => void;
const baseAppendEscaped = Base.prototype.appendEscaped as (this: Compiler) => void;

function StrictCompiler(this: Compiler): void { /* state is set up by compile() */ }
StrictCompiler.prototype = Object.create(Base.prototype) as Compiler;
Object.assign(StrictCompiler.prototype, {
  constructor: StrictCompiler,
  // block bodies are compiled by a fresh instance of this property: the strict one too
  compiler: StrictCompiler,
  /** Helpers, partials, decorators: own entries of their tables only (no "constructor" helper). */
  nameLookup(this: Compiler, parent: Code, name: string, type: string): Code {
    if (type === 'context' || type === 'data') return [helperFn(this, OWN), '(', parent, ',', this.quotedString(name), ',false,', locLiteral(this), ')'];
    const q = this.quotedString(name);
    return ['(Object.prototype.hasOwnProperty.call(', parent, ',', q, ') ? ', parent, '[', q, '] : undefined)'];
  },
  /** Every segment of a path through ownLookup; in strict mode a written-out path must exist entirely. */
  resolvePath(this: Compiler, _type: string, parts: string[], start: number, _falsy: boolean, strict: boolean): void {
    const required = Boolean(this.options.strict && strict);
    let stack = this.popStack();
    for (let i = start; i < parts.length; i++) {
      stack = [helperFn(this, OWN), '(', stack, ',', this.quotedString(parts[i]!), ',', required ? 'true' : 'false', ',', locLiteral(this), ')'];
    }
    this.push(stack);
  },
  /** What a mustache writes out goes through textOf first. */
  append(this: Compiler): void {
    this.push([helperFn(this, TEXT), '(', this.popStack(), ',', locLiteral(this), ')']);
    baseAppend.call(this);
  },
  appendEscaped(this: Compiler): void {
    this.push([helperFn(this, TEXT), '(', this.popStack(), ',', locLiteral(this), ')']);
    baseAppendEscaped.call(this);
  },
  invokePartial(this: Compiler): void {
    throw new TemplateDataError('partial', '', this.source.currentLocation);
  },
  registerDecorator(this: Compiler): void {
    throw new TemplateDataError('decorator', '', this.source.currentLocation);
  },
});
