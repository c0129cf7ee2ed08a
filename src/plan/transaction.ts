/**
 * A machine's writes as one transaction. Before each change is committed,
 * what it will replace is saved; if a later change fails (an immutable
 * file, a full filesystem, a verification that does not match), every
 * committed change is undone in reverse order, so that the machine is left
 * as it was: content, mode, owner, symlinks and deleted paths.
 *
 * Backups cost (almost) no extra guest calls, which matters through a
 * libguestfs appliance (~20 ms per call):
 * - a file about to be rewritten is kept in memory: the diff has already
 *   read its content (plan/diff.ts), and these are small configuration
 *   files; a registry hive is read once more;
 * - a symlink about to be replaced: its target (one readlink);
 * - a path about to be deleted is renamed to `.NAME.ghostprep-trash` beside
 *   it instead (one rename), and removed only once the whole machine is
 *   committed and verified: whole directory trees, special files and hard
 *   links come back exactly. Before the first rename the trash paths are
 *   written to the journal (plan/trash.ts, one write), so that the next run
 *   removes what a run killed before the end left;
 * - a path that did not exist: the topmost parent the write creates is
 *   noted, and removed on rollback.
 */
import path from 'node:path/posix';
import type { FileStat, Guest } from '../core/backend.js';
import { errorMessage, GuestError } from '../util/errors.js';
import type { EffectiveChange } from './diff.js';
import { journalText, trashPath, TRASH_JOURNAL } from './trash.js';
import { realGuestPath } from './preflight.js';
import type { FileChange } from '../core/file-change.js';

/** How to put one path back as it was. */
type Undo =
  | { readonly kind: 'absent'; readonly path: string; readonly created: string }
  | { readonly kind: 'file'; readonly path: string; readonly content: Buffer; readonly st: FileStat }
  | { readonly kind: 'symlink'; readonly path: string; readonly target: string }
  | { readonly kind: 'attrs'; readonly path: string; readonly st: FileStat }
  | { readonly kind: 'trash'; readonly path: string; readonly trash: string };

/** Raised when a commit failed and was rolled back: the machine is as it was. */
export class RolledBackError extends GuestError {}

export class Transaction {
  private readonly undo: Undo[] = [];
  private finished = false;
  /** The trash paths the guest's journal names, once written (before the first rename). */
  private journal: Set<string> | undefined;
  private journalSaved = false;
  private pending: readonly EffectiveChange[] = [];
  constructor(private readonly guest: Guest, private readonly apply: (guest: Guest, c: FileChange) => Promise<void>) {}

  /** Commit the changes in order; on the first failure roll back and throw RolledBackError. */
  async commit(changes: readonly EffectiveChange[]): Promise<void> {
    for (const [i, e] of changes.entries()) {
      this.pending = changes.slice(i);
      const c = e.change;
      try {
        await this.one(e);
      } catch (err) {
        const what = `cannot ${c.op} ${c.path}: ${errorMessage(err)}`;
        throw await this.failWith(what, err);
      }
    }
  }

  /** Undo everything committed so far; returns the error to report (rollback failures included). */
  async failWith(what: string, cause?: unknown): Promise<RolledBackError> {
    const left = await this.rollback();
    return new RolledBackError(left.length
      ? `${what}; ROLLBACK INCOMPLETE, the machine is partly written: ${left.join('; ')}`
      : `${what}; rolled back: the machine is as it was`, undefined, { cause });
  }

  private async one(e: EffectiveChange): Promise<void> {
    const c = e.change;
    const g = this.guest;
    // Undo records name the symlink-free path the change lands on: a later change of the
    // same plan may replace a link on the way, and rollback must not follow the new one.
    const at = await this.landing(c.path);
    const before = await g.lstat(at);
    if (c.op === 'delete') {
      if (!before) return;
      // the journal of an interrupted run: rewritten by this run's first rename anyway, else removed as it is
      if (at === TRASH_JOURNAL) {
        if (this.journal) return;
        await this.saveJournal();
        await g.remove(at);
        return;
      }
      const trash = trashPath(at);
      await this.journalBefore(trash);
      await g.remove(trash, { recursive: true });
      await g.rename(at, trash);
      this.undo.push({ kind: 'trash', path: at, trash });
      return;
    }
    if (!before) {
      this.undo.push({ kind: 'absent', path: at, created: await this.topmostMissing(at) });
    } else if (before.type === 'symlink' && c.op !== 'mkdir') {
      this.undo.push({ kind: 'symlink', path: at, target: (await g.readlink(at)) ?? '' });
    } else if (c.op === 'mkdir') {
      const st = await g.stat(at);
      if (st) this.undo.push({ kind: 'attrs', path: await realGuestPath(g, at, true), st });
      else this.undo.push({ kind: 'absent', path: at, created: await this.topmostMissing(at) });
    } else if (before.type === 'file') {
      const known = e.beforeContent ?? (c.op === 'write' && !c.pending && e.action !== 'modify' ? c.content : undefined);
      const content = known ?? (await g.readFile(at, { maxBytes: Math.max(before.size, 1) }));
      if (!content) throw new GuestError(`${c.path} vanished while being saved`, c.path);
      this.undo.push({ kind: 'file', path: at, content, st: before });
    } else {
      // preflight refuses writing over directories and special files
      throw new GuestError(`${c.path} is a ${before.type}; not replacing it`, c.path);
    }
    await this.apply(g, c);
  }

  /**
   * Make sure the journal names `trash` before it is made. The first time, it names the
   * trash of every delete still to come (one write for the machine); a path it missed
   * (a link on the way replaced by an earlier change) is added with one more write.
   */
  private async journalBefore(trash: string): Promise<void> {
    if (this.journal?.has(trash)) return;
    if (!this.journal) {
      await this.saveJournal();
      this.journal = new Set([trash]);
      for (const e of this.pending) {
        if (e.change.op === 'delete' && e.before && e.change.path !== TRASH_JOURNAL) this.journal.add(trashPath(await this.landing(e.change.path)));
      }
    }
    this.journal.add(trash);
    await this.guest.writeFile(TRASH_JOURNAL, Buffer.from(journalText([...this.journal])), { mode: 0o600, uid: 0, gid: 0 });
  }

  /** The journal as it was before this run's first write of it (an interrupted run's, or none), for rollback. */
  private async saveJournal(): Promise<void> {
    if (this.journalSaved) return;
    this.journalSaved = true;
    const st = await this.guest.lstat(TRASH_JOURNAL);
    if (!st) this.undo.push({ kind: 'absent', path: TRASH_JOURNAL, created: TRASH_JOURNAL });
    else if (st.type === 'file') this.undo.push({ kind: 'file', path: TRASH_JOURNAL, content: (await this.guest.readFile(TRASH_JOURNAL)) ?? Buffer.alloc(0), st });
  }

  /** Where a change of `p` lands: its parent resolved inside the guest, its own name kept. */
  private async landing(p: string): Promise<string> {
    const parent = await realGuestPath(this.guest, path.dirname(path.resolve('/', p)), true);
    return path.join(parent, path.basename(p));
  }

  /** What creating `at` (a landing path) creates: its highest missing ancestor, or itself. */
  private async topmostMissing(at: string): Promise<string> {
    let top = at;
    for (let d = path.dirname(at); d !== '/' && !(await this.guest.lstat(d)); d = path.dirname(d)) top = d;
    return top;
  }

  /** Put every committed path back, newest first. Returns what could not be restored. */
  async rollback(): Promise<string[]> {
    const failures: string[] = [];
    for (const u of this.undo.reverse()) {
      // a step that fails is tried once more (a transient error must not leave the machine half-written)
      try {
        await this.restore(u);
      } catch {
        try { await this.restore(u); } catch (err) { failures.push(`${u.path}: ${errorMessage(err)}`); }
      }
    }
    this.undo.length = 0;
    return failures;
  }

  /**
   * Put one path back; only what differs: the change that failed may have written
   * nothing (and an immutable file cannot be rewritten even with its own content).
   */
  private async restore(u: Undo): Promise<void> {
    const g = this.guest;
    switch (u.kind) {
      case 'absent':
        if (await g.lstat(u.created)) await g.remove(u.created, { recursive: true });
        break;
      case 'file': {
        const st = await g.lstat(u.path);
        const same = st?.type === 'file' && st.size === u.content.length && st.mode === u.st.mode && st.uid === u.st.uid && st.gid === u.st.gid && (await g.readFile(u.path))?.equals(u.content);
        if (!same) await g.writeFile(u.path, u.content, { mode: u.st.mode, uid: u.st.uid, gid: u.st.gid });
        break;
      }
      case 'symlink':
        if ((await g.readlink(u.path)) !== u.target) await g.symlink(u.target, u.path);
        break;
      case 'attrs': {
        const st = await g.stat(u.path);
        if (st?.mode === u.st.mode && st.uid === u.st.uid && st.gid === u.st.gid) break;
        await g.chmod(u.path, u.st.mode);
        await g.chown(u.path, u.st.uid, u.st.gid);
        await g.chmod(u.path, u.st.mode); // chown clears setuid/setgid bits
        break;
      }
      case 'trash':
        await g.rename(u.trash, u.path);
        break;
    }
  }

  /**
   * The machine is committed and verified: drop the backups (the deleted paths go for
   * good). Each removal is tried twice; what still cannot be removed is returned (the
   * machine is complete, a hidden `.NAME.ghostprep-trash` is left to clean up).
   */
  async finish(): Promise<string[]> {
    if (this.finished) return [];
    this.finished = true;
    const left: string[] = [];
    for (const u of this.undo) {
      if (u.kind !== 'trash') continue;
      try {
        await this.guest.remove(u.trash, { recursive: true });
      } catch {
        try { await this.guest.remove(u.trash, { recursive: true }); } catch (err) { left.push(`${u.trash}: ${errorMessage(err)}`); }
      }
    }
    this.undo.length = 0;
    // trash that could not be removed stays named in the journal, for the next run to remove
    if (!left.length && this.journal) {
      try { await this.guest.remove(TRASH_JOURNAL); } catch (err) { left.push(`${TRASH_JOURNAL}: ${errorMessage(err)}`); }
    }
    return left;
  }
}
