/**
 * The renderer table: the one registry of network renderers. One record per
 * renderer (its detection, rendering, stale rules, directories and manual
 * row); the table refuses duplicate names and duplicate detection
 * priorities, lists names sorted (so `--help`, the schema enum and the
 * manual come from one place) and walks detection in priority order.
 */
import type { Renderer } from '../../core/network.js';
import { eni } from './eni.js';
import { ifcfg } from './ifcfg.js';
import { netplan } from './netplan.js';
import { networkManager } from './network-manager.js';
import { networkd } from './networkd.js';


export class RendererTable {
  private readonly byName = new Map<string, Renderer>();
  constructor(renderers: readonly Renderer[] = []) {
    for (const r of renderers) this.add(r);
  }
  add(r: Renderer): void {
    if (this.byName.has(r.name)) throw new Error(`duplicate network renderer name: ${r.name}`);
    const rival = [...this.byName.values()].find((o) => o.priority === r.priority);
    // two records at one priority would make the detection walk depend on registration order
    if (rival) throw new Error(`network renderers ${rival.name} and ${r.name} have the same detection priority ${r.priority}`);
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
  /** In detection order: the first whose `detect` gives a reason is the one the guest reads. */
  byPriority(): Renderer[] {
    return [...this.byName.values()].sort((a, b) => a.priority - b.priority);
  }
}

export const RENDERERS = new RendererTable([netplan, networkd, networkManager, ifcfg, eni]);
