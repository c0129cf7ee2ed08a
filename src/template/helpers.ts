/**
 * The documented template helpers. Keep this list small: every helper is
 * part of the profile format users write against. Helpers see only the
 * values they are given; one that needs text refuses a map or a list
 * (it would otherwise write `[object Object]` or `a,b`).
 */

/** A position in a template, as Handlebars records it (line 1-based, column 0-based). */
export interface Loc { readonly start: { readonly line: number; readonly column: number }; readonly end?: { readonly line: number; readonly column: number } }

export type TemplateDataProblem = 'unknown' | 'map' | 'list' | 'partial' | 'decorator' | 'argument';

/**
 * A template that uses its data wrongly: an unknown or inherited name, a map
 * or list written as text, a partial. Thrown while rendering, with the
 * position of the expression when known; turned into a TemplateError (which
 * names the template) by the renderer.
 */
export class TemplateDataError extends Error {
  constructor(readonly kind: TemplateDataProblem, readonly variable: string, readonly loc: Loc | undefined, readonly detail: string = '') {
    super(detail || `${kind}${variable ? ` "${variable}"` : ''}`);
    this.name = 'TemplateDataError';
  }
}

const kindOf = (v: unknown): string => (Array.isArray(v) ? 'a list' : 'a map');

/** A scalar as text; a map or a list is an error (the helper's options add its position). */
function text(v: unknown): string {
  if (v !== null && typeof v === 'object') throw new TemplateDataError('argument', '', undefined, `is given ${kindOf(v)} where text is needed`);
  return String(v);
}

export const HELPERS: ReadonlyArray<{ name: string; usage: string; description: string; fn: (...args: unknown[]) => unknown }> = [
  { name: 'join', usage: '{{join site.dns " "}}', description: 'join a list with a separator (default ", ")', fn: (list, sep) => (Array.isArray(list) ? list : [list]).map(text).join(typeof sep === 'string' ? sep : ', ') },
  { name: 'default', usage: '{{default (lookup vars "rack") "r0"}}', description: 'the value, or a fallback when it is empty or missing', fn: (v, d) => (v === undefined || v === null || v === '' ? d : v) },
  { name: 'upper', usage: '{{upper machine.name}}', description: 'upper case', fn: (s) => text(s).toUpperCase() },
  { name: 'lower', usage: '{{lower machine.name}}', description: 'lower case', fn: (s) => text(s).toLowerCase() },
  { name: 'ipAddress', usage: '{{ipAddress machine.ip}}', description: 'address part of a CIDR ("10.0.0.11/24" -> "10.0.0.11")', fn: (s) => text(s).split('/')[0] },
  { name: 'ipPrefix', usage: '{{ipPrefix machine.ip}}', description: 'prefix length of a CIDR ("10.0.0.11/24" -> "24")', fn: (s) => text(s).split('/')[1] ?? '' },
  { name: 'json', usage: '{{json vars}}', description: 'JSON encoding of a value', fn: (v) => JSON.stringify(v) },
  { name: 'eq', usage: '{{#if (eq distro.family "debian")}}…{{/if}}', description: 'equality test for #if', fn: (a, b) => a === b },
  { name: 'indent', usage: '{{indent 4 vars.block}}', description: 'indent every line after the first by N spaces', fn: (n, s) => text(s).replace(/\n/g, '\n' + ' '.repeat(Math.max(0, Math.min(1000, Number(n) || 0)))) },
];
