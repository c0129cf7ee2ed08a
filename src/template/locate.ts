/**
 * Where a problem of a machine's resolved profile is written: the file, line
 * and column of the value (or of the inventory value a template used).
 */
import type { Diagnostic } from '../core/diagnostic.js';
import type { PreparedMachine, SourceFile } from '../core/machine.js';
import type { Inventory } from '../core/profile.js';
import { originOf } from '../profile/profile-merge.js';
import { placeIn, toPointer } from '../profile/source.js';
import { substitutionAt } from './context.js';

/**
 * Turn a problem at a pointer of the resolved profile into a located diagnostic.
 * A rendered value that is exactly one substitution of an inventory value
 * (`addresses: ["{{machine.ip}}"]`, `via: "{{vars.gw}}"`, also through a site or
 * hostname template that is itself one substitution) is reported where that value
 * is written (the inventory line of the machine's ip), naming the template that
 * used it; any other value, where the profile (or the inventory override) wrote it.
 */
export function locateProblem(m: PreparedMachine, pointer: string, message: string, severity: 'error' | 'warning' = 'error', key = false): Diagnostic {
  if (!key) {
    const used = substitutionAt(m.traced.value, pointer);
    const place = used && placeOfData(m, used, 0);
    // values of the inventory (machine entries, inventory vars): a profile value stays where the profile uses it
    if (place && place.source === m.inventory) {
      const template = originOf(m.traced.origins, pointer);
      const at = template ? placeIn(template.source, { severity, path: template.pointer, message: '' }) : undefined;
      const by = at ? ` (used as {{${used.join('.')}}} at ${at.file}:${at.line}:${at.col}, ${pointer})` : ` (used as {{${used.join('.')}}} at ${pointer})`;
      return placeIn(place.source, { severity, path: place.pointer, message: message + by });
    }
  }
  return locateTemplateProblem(m, pointer, message, severity, key);
}

/** A problem of the template string at `pointer` itself (a template error): always placed at the string. */
export function locateTemplateProblem(m: PreparedMachine, pointer: string, message: string, severity: 'error' | 'warning' = 'error', key = false): Diagnostic {
  const origin = originOf(m.traced.origins, pointer);
  if (!origin) return { severity, path: pointer, message: `machine ${m.name}: ${message}` };
  return placeIn(origin.source, { severity, path: origin.pointer, message }, { key });
}

interface Place { readonly source: SourceFile; readonly pointer: string }

const own = (o: unknown, k: string): boolean => o !== null && typeof o === 'object' && Object.hasOwn(o, k);

/** Where a pointer of the resolved profile is written, following whole-value substitutions. */
function placeOfPointer(m: PreparedMachine, pointer: string, depth = 0): Place | undefined {
  const used = depth < 8 ? substitutionAt(m.traced.value, pointer) : undefined;
  const place = used && placeOfData(m, used, depth + 1);
  if (place) return place;
  const origin = originOf(m.traced.origins, pointer);
  return origin && { source: origin.source, pointer: origin.pointer };
}

/** Where a value of the template data (machine.ip, vars.rack, site.dns.0) is written; undefined when computed. */
function placeOfData(m: PreparedMachine, data: readonly string[], depth: number): Place | undefined {
  const [root, key, ...rest] = data;
  if (key === undefined) return undefined;
  const inInventory = (...segs: string[]): Place => ({ source: m.inventory, pointer: toPointer(segs) });
  switch (root) {
    case 'machine':
      if (key === 'hostname') return placeOfPointer(m, toPointer(['hostname', ...rest]), depth);
      if (key === 'vars' || key === 'network' || key === 'fqdn' || key === 'machineId' || key === 'sshHostKeys') return undefined;
      return key === 'name' || own(m.entry, key) ? inInventory('machines', String(m.index), key, ...rest) : undefined;
    case 'vars': {
      // the layers of `vars`, highest first (see prepareFleet)
      const inv = m.inventory.data as Partial<Inventory> | undefined;
      if (own(m.entry.vars, key)) return inInventory('machines', String(m.index), 'vars', key, ...rest);
      if (own(inv?.vars, key)) return inInventory('vars', key, ...rest);
      if (own(inv?.defaults?.vars, key)) return inInventory('defaults', 'vars', key, ...rest);
      if (!own(m.traced.value.vars, key)) return undefined;
      const origin = originOf(m.traced.origins, toPointer(['vars', key, ...rest]));
      return origin && { source: origin.source, pointer: origin.pointer };
    }
    case 'site':
      return placeOfPointer(m, toPointer(['site', key, ...rest]), depth);
    default:
      return undefined;
  }
}

