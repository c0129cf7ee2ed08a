/**
 * The renderer table. One record per renderer; the table refuses duplicate
 * names and lists names sorted, so `--help`, the schema enum and the manual
 * come from one place.
 */
import type { Renderer } from './common.js';
import { eni } from './eni.js';
import { ifcfg } from './ifcfg.js';
import { netplan } from './netplan.js';
import { networkManager } from './network-manager.js';
import { networkd } from './networkd.js';

export type { Renderer } from './common.js';

export class RendererTable {
  private readonly byName = new Map<string, Renderer>();
  constructor(renderers: readonly Renderer[] = []) {
    for (const r of renderers) this.add(r);
  }
  add(r: Renderer): void {
    if (this.byName.has(r.name)) throw new Error(`duplicate network renderer name: ${r.name}`);
    this.byName.set(r.name, r);
  }
  get(name: string): Renderer | undefined {
    return this.byName.get(name);
  }
  names(): string[] {
    return [...this.byName.keys()].sort();
  }
  all(): Renderer[] {
    return this.names().map((n) => this.byName.get(n)!);
  }
}

export const RENDERERS = new RendererTable([netplan, networkd, networkManager, ifcfg, eni]);
