/**
 * The documented template helpers. Keep this list small: every helper is
 * part of the profile format users write against.
 */
import type HandlebarsNS from 'handlebars';

export const HELPERS: ReadonlyArray<{ name: string; usage: string; description: string; fn: (...args: unknown[]) => unknown }> = [
  { name: 'join', usage: '{{join site.dns " "}}', description: 'join a list with a separator (default ", ")', fn: (list, sep) => (Array.isArray(list) ? list : [list]).join(typeof sep === 'string' ? sep : ', ') },
  { name: 'default', usage: '{{default (lookup vars "rack") "r0"}}', description: 'the value, or a fallback when it is empty or missing', fn: (v, d) => (v === undefined || v === null || v === '' ? d : v) },
  { name: 'upper', usage: '{{upper machine.name}}', description: 'upper case', fn: (s) => String(s).toUpperCase() },
  { name: 'lower', usage: '{{lower machine.name}}', description: 'lower case', fn: (s) => String(s).toLowerCase() },
  { name: 'ipAddress', usage: '{{ipAddress machine.ip}}', description: 'address part of a CIDR ("10.0.0.11/24" -> "10.0.0.11")', fn: (s) => String(s).split('/')[0] },
  { name: 'ipPrefix', usage: '{{ipPrefix machine.ip}}', description: 'prefix length of a CIDR ("10.0.0.11/24" -> "24")', fn: (s) => String(s).split('/')[1] ?? '' },
  { name: 'json', usage: '{{json vars}}', description: 'JSON encoding of a value', fn: (v) => JSON.stringify(v) },
  { name: 'eq', usage: '{{#if (eq distro.family "debian")}}…{{/if}}', description: 'equality test for #if', fn: (a, b) => a === b },
  { name: 'indent', usage: '{{indent 4 vars.block}}', description: 'indent every line after the first by N spaces', fn: (n, s) => String(s).replace(/\n/g, '\n' + ' '.repeat(Number(n))) },
];

export function registerHelpers(hb: typeof HandlebarsNS): void {
  for (const h of HELPERS) {
    // Handlebars passes an options object last; helpers here never need it.
    hb.registerHelper(h.name, (...args: unknown[]) => h.fn(...args.slice(0, -1)));
  }
}
