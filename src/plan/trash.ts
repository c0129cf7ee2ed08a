/**
 * Where deleted paths wait until their machine is committed, and how a run
 * killed mid-commit is cleaned up by the next one.
 *
 * A transaction (plan/transaction.ts) deletes a path by renaming it to
 * `.NAME.ghostprep-trash` beside it and removes the trash once the machine is
 * committed and verified. A run killed in between leaves trash that the next
 * plan may no longer reach through the path it came from: an operation that
 * deletes only what exists (a stale host key, a lease) sees nothing to delete
 * once the path is gone. So before the first rename the transaction writes the
 * journal, `/.ghostprep-journal`, naming every trash path it is about to make,
 * and removes the journal with the trash. The next plan reads the journal and
 * deletes every trash it names that is still there, whatever the operations
 * plan; a journal whose trash is all gone is deleted too.
 */
import path from 'node:path/posix';
import type { GuestReader } from '../core/backend.js';
import type { DeleteChange } from '../core/file-change.js';

export const TRASH_JOURNAL = '/.ghostprep-journal';

const TRASH_SUFFIX = '.ghostprep-trash';
/** The journal of a machine with a thousand deleted paths is far below this; a larger one is not ours. */
const JOURNAL_MAX_BYTES = 1024 * 1024;

/** Where a deleted path waits until its machine is committed. Only ghostprep makes such names. */
export function trashPath(p: string): string {
  return path.join(path.dirname(p), `.${path.basename(p)}${TRASH_SUFFIX}`);
}

/** The path a trash name was made from, or undefined when `p` is not a trash name. */
export function trashedPath(p: string): string | undefined {
  const name = path.basename(p);
  if (!name.startsWith('.') || !name.endsWith(TRASH_SUFFIX) || name.length <= TRASH_SUFFIX.length + 1) return undefined;
  return path.join(path.dirname(p), name.slice(1, -TRASH_SUFFIX.length));
}

/** The journal's text for these trash paths. */
export function journalText(trash: readonly string[]): string {
  return JSON.stringify({ trash }) + '\n';
}

/**
 * The trash paths the guest's journal names: absolute, normalized trash names only
 * (the journal is guest content: whatever else it holds is ignored), or null when
 * there is no journal (or something other than a regular file is in its place).
 */
export async function readTrashJournal(guest: GuestReader): Promise<string[] | null> {
  const st = await guest.lstat(TRASH_JOURNAL);
  if (st?.type !== 'file') return null;
  const raw = await guest.readFile(TRASH_JOURNAL, { maxBytes: JOURNAL_MAX_BYTES }).catch(() => null);
  let listed: unknown;
  try {
    listed = raw ? (JSON.parse(raw.toString('utf8')) as { trash?: unknown }).trash : undefined;
  } catch {
    listed = undefined;
  }
  if (!Array.isArray(listed)) return [];
  return [...new Set(listed.filter((p): p is string =>
    typeof p === 'string' && p.startsWith('/') && !p.includes('\0') && path.normalize(p) === p && trashedPath(p) !== undefined))];
}

/**
 * The deletes that finish what an interrupted run left: each trash the journal names
 * that is still there (unless `planned` already deletes it). The journal itself goes
 * with the trash this plan makes (the transaction rewrites it, then removes it); when
 * the plan makes none, the journal is deleted as a change of its own. Empty without a journal.
 */
export async function leftoverTrashDeletes(guest: GuestReader, planned: ReadonlySet<string>, makesTrash: boolean): Promise<DeleteChange[]> {
  const listed = await readTrashJournal(guest);
  if (listed === null) return [];
  const out: DeleteChange[] = [];
  for (const trash of listed) {
    if (planned.has(trash) || !(await guest.lstat(trash))) continue;
    out.push({ op: 'delete', source: 'transaction', path: trash, recursive: true, reason: `left by a run interrupted while deleting ${trashedPath(trash)}` });
  }
  if (!out.length && !makesTrash) out.push({ op: 'delete', source: 'transaction', path: TRASH_JOURNAL, reason: 'journal of an interrupted run whose deleted paths are all gone' });
  return out;
}
