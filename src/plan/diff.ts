/**
 * Compare a plan with the guest: which changes would really change
 * something, and a unified diff of each for people. Secret contents are
 * never shown (only that they change, and their size).
 */
import { isUtf8 } from 'node:buffer';
import path from 'node:path/posix';
import { createTwoFilesPatch } from 'diff';
import type { FileStat, GuestReader } from '../core/backend.js';
import { sha256 } from '../identity/state.js';
import { describeMode, type FileChange } from '../core/file-change.js';
import { pendingEdits, readHive, regText } from '../windows/hive.js';
import { leftoverTrashDeletes, trashPath } from './trash.js';

export type Action = 'create' | 'modify' | 'delete' | 'chmod' | 'chown' | 'symlink';

export interface EffectiveChange {
  readonly change: FileChange;
  readonly action: Action;
  readonly before: FileStat | null;
  /** Previous content for writes over an existing regular file. */
  readonly beforeContent?: Buffer;
  /** Notes like "mode 0644 -> 0600". */
  readonly notes: readonly string[];
  /** Registry changes: the keys they touch as .reg text, before and after (the diff shows these). */
  readonly registry?: { readonly before: string; readonly after: string };
}

const TEXT_LIMIT = 256 * 1024;

export async function effectiveChanges(guest: GuestReader, changes: readonly FileChange[]): Promise<EffectiveChange[]> {
  const out: EffectiveChange[] = [];
  for (const change of changes) {
    const e = await compare(guest, change);
    if (e) out.push(e);
  }
  // what a run killed mid-commit left, whether or not this plan still reaches it
  const makesTrash = out.some((e) => e.change.op === 'delete' && e.before);
  for (const change of await leftoverTrashDeletes(guest, new Set(out.map((e) => e.change.path)), makesTrash)) {
    out.push({ change, action: 'delete', before: await guest.lstat(change.path), notes: [] });
  }
  return out;
}

async function compare(guest: GuestReader, c: FileChange): Promise<EffectiveChange | null> {
  const before = await guest.lstat(c.path);
  switch (c.op) {
    case 'registry': {
      // Only the values that differ are applied and shown.
      const hive = before ? await readHive(guest, c.path) : null;
      const edits = pendingEdits(hive, c.edits);
      if (!edits.length) return null;
      const registry = { before: regText(c.root, edits, hive, false), after: regText(c.root, edits, hive, true) };
      return { change: { ...c, edits }, action: before ? 'modify' : 'create', before, notes: [`${edits.length} registry value${edits.length === 1 ? '' : 's'}`], registry };
    }
    case 'delete': {
      if (before) return { change: c, action: 'delete', before, notes: [] };
      const trash = trashPath(c.path);
      const left = await guest.lstat(trash);
      return left ? { change: { ...c, path: trash, recursive: true, reason: `left by an interrupted run deleting ${c.path}` }, action: 'delete', before: left, notes: [] } : null;
    }
    case 'symlink': {
      if (before?.type === 'symlink' && (await guest.readlink(c.path)) === c.target) return null;
      return { change: c, action: 'symlink', before, notes: [] };
    }
    case 'mkdir': {
      const st = before?.type === 'symlink' ? await guest.stat(c.path) : before;
      if (!st) return { change: c, action: 'create', before, notes: [] };
      if (st.type !== 'dir') return { change: c, action: 'modify', before, notes: [`replaces a ${st.type}`] };
      return attrChange(c, st, c.mode, c.uid, c.gid);
    }
    case 'write': {
      if (!before) return { change: c, action: 'create', before, notes: [] };
      if (before.type !== 'file') return { change: c, action: 'modify', before, notes: [`replaces a ${before.type}`] };
      const current = await guest.readFile(c.path);
      if (c.pending || !current || !current.equals(c.content)) return { change: c, action: 'modify', before, beforeContent: current ?? undefined, notes: attrNotes(before, c.mode, c.uid, c.gid) };
      return attrChange(c, before, c.mode, c.uid, c.gid);
    }
  }
}

function attrNotes(st: FileStat, mode: number, uid: number, gid: number): string[] {
  const notes: string[] = [];
  if ((st.mode & 0o7777) !== (mode & 0o7777)) notes.push(`mode ${describeMode(st.mode)} -> ${describeMode(mode)}`);
  if (st.uid !== uid || st.gid !== gid) notes.push(`owner ${st.uid}:${st.gid} -> ${uid}:${gid}`);
  return notes;
}

function attrChange(c: FileChange, st: FileStat, mode: number, uid: number, gid: number): EffectiveChange | null {
  const notes = attrNotes(st, mode, uid, gid);
  if (!notes.length) return null;
  return { change: c, action: notes.some((n) => n.startsWith('mode')) ? 'chmod' : 'chown', before: st, notes };
}

function isText(b: Buffer): boolean {
  return b.length <= TEXT_LIMIT && !b.includes(0) && isUtf8(b);
}

/** One unified diff per change, git-style headers, secrets masked. */
export function renderDiff(e: EffectiveChange): string {
  const c = e.change;
  const p = c.path;
  const head = `--- ${e.before ? 'a' + p : '/dev/null'}\n+++ ${c.op === 'delete' ? '/dev/null' : 'b' + p}\n`;
  const why = [c.reason, ...e.notes].filter(Boolean).join('; ');
  const note = `# ${e.action} ${p} (${c.source}${why ? ': ' + why : ''})\n`;
  if (c.op === 'delete') return note + head + (e.before?.type === 'file' ? '@@ deleted @@\n' : `@@ deleted ${e.before?.type ?? ''} @@\n`);
  if (c.op === 'symlink') return note + head + `@@ symlink -> ${c.target} @@\n`;
  if (c.op === 'registry') {
    // A pseudo-file diff in .reg syntax: the hive is binary, its values are not.
    const patch = createTwoFilesPatch(`a${p}`, `b${p}`, e.registry?.before ?? '', e.registry?.after ?? '', undefined, undefined, { context: 3 });
    return note + patch.split('\n').filter((l, i) => !(i === 0 && l.startsWith('===='))).join('\n');
  }
  if (c.op === 'mkdir') return note + (e.action === 'create' ? `@@ directory ${describeMode(c.mode)} ${c.uid}:${c.gid} @@\n` : '');
  if (e.action === 'chmod' || e.action === 'chown') return note;
  if (c.pending) return note + head + `@@ ${c.secret ? 'secret ' : ''}content generated at apply @@\n`;
  if (c.secret) return note + head + `@@ secret content not shown: ${e.beforeContent ? `${e.beforeContent.length} -> ` : ''}${c.content.length} bytes @@\n`;
  const old = e.beforeContent;
  if ((old && !isText(old)) || !isText(c.content)) return note + head + `@@ binary content: sha256 ${old ? sha256(old).slice(0, 12) + ' -> ' : ''}${sha256(c.content).slice(0, 12)} @@\n`;
  // nothing before (a new file, the common case): every line is an addition, no diff to compute
  if (!old?.length) return note + additionsPatch(e.before ? 'a' + p : '/dev/null', 'b' + p, c.content.toString('utf8'));
  const oldText = old.toString('utf8');
  const newText = c.content.toString('utf8');
  // lines appended to a file (a user added to /etc/passwd): the hunk is the old tail as context, then the additions
  if (newText.length > oldText.length && oldText.endsWith('\n') && newText.startsWith(oldText)) return note + appendPatch('a' + p, 'b' + p, oldText, newText);
  const patch = createTwoFilesPatch(e.before ? 'a' + p : '/dev/null', 'b' + p, oldText, newText, undefined, undefined, { context: 3 });
  // drop the "===" header line the library adds
  return note + patch.split('\n').filter((l, i) => !(i === 0 && l.startsWith('===='))).join('\n');
}

/** Lines of `text` as diff lines with `prefix`, the count, and git's marker when the last line has no newline. */
function diffLines(text: string, prefix: string): { lines: string; count: number } {
  const eol = text.endsWith('\n');
  const body = eol ? text.slice(0, -1) : text;
  let count = 1;
  for (let i = body.indexOf('\n'); i >= 0; i = body.indexOf('\n', i + 1)) count++;
  return { lines: `${prefix}${body.replaceAll('\n', '\n' + prefix)}\n${eol ? '' : '\\ No newline at end of file\n'}`, count };
}

/** What createTwoFilesPatch gives for an empty old text (without its "====" line), built directly. */
export function additionsPatch(oldName: string, newName: string, text: string): string {
  const head = `--- ${oldName}\n+++ ${newName}\n`;
  if (!text) return head;
  const added = diffLines(text, '+');
  return `${head}@@ -0,0 +1,${added.count} @@\n${added.lines}`;
}

/**
 * What createTwoFilesPatch gives (3 lines of context) when `newText` is `oldText`
 * (ending with a newline, not empty) with more text appended.
 */
export function appendPatch(oldName: string, newName: string, oldText: string, newText: string): string {
  let oldCount = 0;
  for (let i = oldText.indexOf('\n'); i >= 0; i = oldText.indexOf('\n', i + 1)) oldCount++;
  const ctx = Math.min(3, oldCount);
  let at = oldText.length - 1; // the final newline
  for (let n = 0; n < ctx; n++) at = at > 0 ? oldText.lastIndexOf('\n', at - 1) : -1;
  const context = diffLines(oldText.slice(at + 1), ' ');
  const added = diffLines(newText.slice(oldText.length), '+');
  const start = oldCount - ctx + 1;
  return `--- ${oldName}\n+++ ${newName}\n@@ -${start},${ctx} +${start},${ctx + added.count} @@\n${context.lines}${added.lines}`;
}
