/**
 * Most seal operations remove per-machine files so that the clone makes its
 * own at first boot: this builds such an operation from a list of guest
 * globs. Directories named by a pattern are removed with their contents.
 */
import type { FileChange } from '../../core/file-change.js';
import type { GuestKind, SealContext, SealOperation } from '../../core/operation.js';
import { del, guestGlob } from '../util.js';

export function removalOperation(spec: { name: string; description: string; defaultEnabled?: boolean; guests: readonly GuestKind[]; reason: string; patterns: readonly string[] | ((ctx: SealContext) => readonly string[]) }): SealOperation {
  return {
    name: spec.name,
    kind: 'seal',
    description: spec.description,
    defaultEnabled: spec.defaultEnabled ?? true,
    guests: spec.guests,
    async plan(ctx) {
      const patterns = typeof spec.patterns === 'function' ? spec.patterns(ctx) : spec.patterns;
      const changes: FileChange[] = [];
      for (const pattern of patterns) {
        for (const p of await guestGlob(ctx.guest, pattern)) {
          const st = await ctx.guest.lstat(p);
          changes.push(del(spec.name, p, spec.reason, st?.type === 'dir'));
        }
      }
      return changes;
    },
  };
}
