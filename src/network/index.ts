/**
 * Entry point of the network module: validated v2 config + guest -> the file
 * changes that give the clone its own network configuration.
 *
 *   selectRenderer (what the guest reads) -> interpret (v2 -> model)
 *   -> renderer.render (pure) -> edits applied to the guest's current files
 *   -> findStale (master files that would fight ours)
 *
 * Planning only reads the guest; the plan layer applies the changes.
 */
import type { GuestReader } from '../core/backend.js';
import type { Distro } from '../core/distro.js';
import type { FileChange, WriteChange } from '../core/file-change.js';
import { GhostprepError, GuestError } from '../util/errors.js';
import { interpret } from './interpret.js';
import type { EditedFile, NetworkModel, RenderedFile, RenderOptions } from '../core/network.js';
import { RENDERERS } from './renderers/index.js';
import { selectRenderer } from './select.js';
import { SOURCE } from './renderers/guest.js';
import { findStale } from './stale.js';

export { checkNetwork, addressesOf } from './check.js';
export type { NetworkProblem } from './check.js';
export { interpret } from './interpret.js';
export { selectRenderer } from './select.js';
export type { Selection } from './select.js';
export { findStale } from './stale.js';
export { RENDERERS } from './renderers/index.js';
export { networkV2, netplanBody } from './renderers/netplan.js';
export { NetworkRenderError } from './model.js';

export interface NetworkPlan {
  readonly renderer: string;
  readonly reason: string;
  readonly changes: FileChange[];
}

export interface NetworkInput {
  /** Rendered (templates expanded) and validated v2 config. */
  readonly config: unknown;
  readonly distro: Distro;
  readonly reader: GuestReader;
  /** Forced renderer (profile key networkRenderer). */
  readonly renderer?: string | undefined;
  /** The clone's machine-id: NetworkManager connection UUIDs (ours and the master's kept ones) derive from it. */
  readonly machineId?: string | undefined;
  /** The reader is no real guest (`plan` without a target): skip checks of what the guest has installed. */
  readonly renderOnly?: boolean | undefined;
}

export const RENDERER_NAMES: readonly string[] = Object.freeze(RENDERERS.names());

const writeChange = (path: string, content: string, mode: number, reason: string): WriteChange => ({
  op: 'write', path, content: Buffer.from(content, 'utf8'), mode, uid: 0, gid: 0, source: SOURCE, reason,
});

/** Render with the named renderer (no guest access): for tests, golden files and `plan` without a target. */
export function renderWith(name: string, model: NetworkModel, distro: Distro, opts: RenderOptions = {}): RenderedFile[] {
  const renderer = RENDERERS.get(name);
  if (!renderer) throw new GhostprepError(`unknown network renderer "${name}"; known: ${RENDERERS.names().join(', ')}`);
  return renderer.render(model, distro, opts);
}

/**
 * Apply each path's edits in order to its current text: the stale pass's
 * rewrite if any (the ENI main file minus the master's stanzas), else what
 * the guest holds. Unchanged files produce no change.
 */
async function applyEdits(edits: EditedFile[], stale: Map<string, FileChange>, reader: GuestReader, why: string): Promise<FileChange[]> {
  const out: FileChange[] = [];
  const paths = [...new Set(edits.map((e) => e.path))];
  for (const p of paths) {
    const mine = edits.filter((e) => e.path === p);
    const st = await reader.lstat(p);
    if (st?.type === 'symlink' && mine.some((e) => e.skipIfSymlink)) continue;
    const prior = stale.get(p);
    const original = (await reader.readFile(p))?.toString('utf8') ?? null;
    let text: string | null = prior?.op === 'write' ? prior.content.toString('utf8') : original;
    for (const e of mine) text = e.apply(text);
    if (text === original && !prior) continue;
    const reasons = [...(prior?.reason ? [prior.reason] : []), ...mine.map((e) => e.reason)].join('; ');
    if (text === null) out.push({ op: 'delete', path: p, source: SOURCE, reason: reasons });
    else out.push(writeChange(p, text, st?.type === 'file' ? st.mode : mine[0]!.mode, `${why}: ${reasons}`));
    stale.delete(p);
  }
  return out;
}

export async function planNetwork(input: NetworkInput): Promise<NetworkPlan> {
  // Windows reads its network settings from unattend.xml, rendered from this same config by the windows-unattend operation
  if (input.distro.family === 'windows') return { renderer: 'windows-unattend', reason: 'Windows guest: network settings go to unattend.xml', changes: [] };
  const { name, reason } = await selectRenderer(input.reader, input.distro, input.renderer);
  const model = interpret(input.config);
  const rendered = renderWith(name, model, input.distro, { machineId: input.machineId });
  const missing = input.renderOnly ? undefined : await RENDERERS.get(name)!.missing?.(input.reader, model, input.distro);
  if (missing) throw new GuestError(`renderer ${name}: ${missing}`);
  const why = `renderer ${name}: ${reason}`;
  const files = rendered.filter((f) => f.kind === 'file').map((f) => writeChange(f.path, f.content, f.mode, why));
  const edits = rendered.filter((f): f is EditedFile => f.kind === 'edit');
  const stale = new Map((await findStale(input.reader, model, files.map((f) => f.path), input.machineId)).map((c) => [c.path, c]));
  const edited = await applyEdits(edits, stale, input.reader, why);
  return { renderer: name, reason, changes: [...files, ...edited, ...stale.values()] };
}
