/**
 * Assemble a machine's plan: run the plan function of each enabled operation
 * that applies to the guest, in the operations' run order, and collect their
 * file changes. At one path the later operation wins: the profile's own
 * `files` and `delete` come last, so a site can override anything ghostprep
 * would write.
 */
import { appliesTo, operations, type CustomizeOperation, type OperationContext } from '../operations/index.js';
import { GhostprepError } from '../util/errors.js';
import type { FileChange } from '../core/file-change.js';

/** The customize operations in run order, sorted once (a plan assembles 10,000 machines). */
let ordered: CustomizeOperation[] | undefined;

export async function assemblePlan(ctx: OperationContext, enabled: (name: string) => boolean = () => true): Promise<FileChange[]> {
  const changes: FileChange[] = [];
  for (const op of (ordered ??= operations.runOrder())) {
    const name = op.name;
    // an operation for other guests is never called: Linux identity files mean nothing on a Windows guest
    if (!appliesTo(op, ctx.distro) || !enabled(name)) continue;
    try {
      changes.push(...(await op.plan(ctx)));
    } catch (err) {
      throw new GhostprepError(`${name}: ${(err as Error).message}`, { cause: err });
    }
  }
  return dedupe(changes);
}

/**
 * Keep the last change per path; a repeated mkdir keeps the first (it carries the owner).
 * Registry changes of one hive by several operations (a Windows SOFTWARE hive: RunOnce,
 * MachineGuid, KMS) add up instead: one change with the edits of all, the later operation's
 * edit winning for the same value.
 */
function dedupe(input: FileChange[]): FileChange[] {
  const changes = [...input];
  const registry = new Map<string, number>();
  changes.forEach((c, i) => {
    if (c.op !== 'registry') return;
    const prior = registry.get(c.path);
    registry.set(c.path, i);
    const p = prior === undefined ? undefined : changes[prior];
    if (p?.op !== 'registry') return;
    const id = (e: { key: string; name: string }) => `${e.key.toUpperCase()}\\${e.name.toUpperCase()}`;
    const later = new Set(c.edits.map(id));
    changes[i] = {
      ...c,
      source: `${p.source}, ${c.source}`,
      reason: [p.reason, c.reason].filter(Boolean).join('; ') || undefined,
      edits: [...p.edits.filter((e) => !later.has(id(e))), ...c.edits],
    };
  });
  const last = new Map<string, number>();
  changes.forEach((c, i) => {
    const prior = last.get(c.path);
    if (prior !== undefined && c.op === 'mkdir' && changes[prior]!.op === 'mkdir') return;
    last.set(c.path, i);
  });
  return changes.filter((c, i) => last.get(c.path) === i);
}
