/**
 * Assemble a machine's plan: run each enabled operation's plan function in
 * order and collect their file changes. At one path the later operation
 * wins: the profile's own `files` and `delete` come last, so a site can
 * override anything ghostprep would write.
 */
import { operations, CUSTOMIZE_ORDER, type OperationContext } from '../operations/index.js';
import type { CustomizeOperation } from '../operations/registry.js';
import { GhostprepError } from '../util/errors.js';
import type { FileChange } from './types.js';

/** The operations in CUSTOMIZE_ORDER, looked up once (a plan assembles 10,000 machines). */
let ordered: CustomizeOperation[] | undefined;

export async function assemblePlan(ctx: OperationContext, enabled: (name: string) => boolean = () => true): Promise<FileChange[]> {
  const changes: FileChange[] = [];
  for (const op of (ordered ??= CUSTOMIZE_ORDER.map((name) => operations.get('customize', name)!))) {
    const name = op.name;
    if (!enabled(name)) continue;
    try {
      changes.push(...(await op.plan(ctx)));
    } catch (err) {
      throw new GhostprepError(`${name}: ${(err as Error).message}`, { cause: err });
    }
  }
  return dedupe(changes);
}

/** Keep the last change per path; a repeated mkdir keeps the first (it carries the owner). */
function dedupe(changes: FileChange[]): FileChange[] {
  const last = new Map<string, number>();
  changes.forEach((c, i) => {
    const prior = last.get(c.path);
    if (prior !== undefined && c.op === 'mkdir' && changes[prior]!.op === 'mkdir') return;
    last.set(c.path, i);
  });
  return changes.filter((c, i) => last.get(c.path) === i);
}
