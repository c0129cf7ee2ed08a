/**
 * An in-memory guest for unit tests of pure logic: a map of absolute paths to
 * entries. Symlinks are resolved inside the map, like the rootfs backend.
 */
import path from 'node:path/posix';
import { GuestError } from '../util/errors.js';
import type { FileStat, Guest, ReadOptions, WriteAttributes } from '../core/backend.js';
import { DEFAULT_MAX_READ } from '../core/backend.js';

export type MemoryEntry =
  | { type: 'file'; content: Buffer; mode: number; uid: number; gid: number }
  | { type: 'dir'; mode: number; uid: number; gid: number }
  | { type: 'symlink'; target: string };

/** Spec for the constructor: a string or Buffer is a 0644 root file; `{symlink}` a link; `{dir: true}` a directory. */
export type MemorySpec = string | Buffer | { symlink: string } | { dir: true; mode?: number } | { content: string | Buffer; mode?: number; uid?: number; gid?: number };

const MAX_LINKS = 40;
const DOTS_RE = /(?:^|\/)\.\.?(?:\/|$)/;
/** Whether a path has a `.` or `..` component (an absolute path without "/." has none: the common case, no regex). */
const hasDots = (p: string): boolean => (p[0] === '/' && !p.includes('/.') ? false : DOTS_RE.test(p));

/** The non-empty components of a path, last first (a stack for MemoryGuest.resolve). */
function components(p: string): string[] {
  const out: string[] = [];
  let end = p.length;
  for (let i = p.length - 1; i >= -1; i--) {
    if (i < 0 || p.charCodeAt(i) === 47 /* / */) {
      if (end > i + 1) out.push(p.slice(i + 1, end));
      end = i;
    }
  }
  return out;
}

/** The entries of a MemoryGuest, counting its symlinks (none: a path resolves to itself, normalized). */
class Entries extends Map<string, MemoryEntry> {
  links = 0;
  override set(key: string, value: MemoryEntry): this {
    if (super.get(key)?.type === 'symlink') this.links--;
    if (value.type === 'symlink') this.links++;
    return super.set(key, value);
  }
  override delete(key: string): boolean {
    if (super.get(key)?.type === 'symlink') this.links--;
    return super.delete(key);
  }
  override clear(): void {
    this.links = 0;
    super.clear();
  }
}

export class MemoryGuest implements Guest {
  readonly entries: Map<string, MemoryEntry> = new Entries();
  readonly readonly: boolean;
  constructor(files: Record<string, MemorySpec> = {}, readonly description = 'memory', options: { readonly?: boolean } = {}) {
    this.readonly = options.readonly ?? false;
    this.entries.set('/', { type: 'dir', mode: 0o755, uid: 0, gid: 0 });
    for (const [p, spec] of Object.entries(files)) this.put(p, spec);
  }

  /** Add an entry, creating parent directories. */
  put(p: string, spec: MemorySpec): void {
    const abs = path.resolve('/', p);
    this.ensureParents(abs);
    if (typeof spec === 'string' || Buffer.isBuffer(spec)) {
      this.entries.set(abs, { type: 'file', content: Buffer.from(spec), mode: 0o644, uid: 0, gid: 0 });
    } else if ('symlink' in spec) {
      this.entries.set(abs, { type: 'symlink', target: spec.symlink });
    } else if ('dir' in spec) {
      this.entries.set(abs, { type: 'dir', mode: spec.mode ?? 0o755, uid: 0, gid: 0 });
    } else {
      this.entries.set(abs, { type: 'file', content: Buffer.from(spec.content), mode: spec.mode ?? 0o644, uid: spec.uid ?? 0, gid: spec.gid ?? 0 });
    }
  }

  /** Text of a file, for assertions. */
  text(p: string): string | undefined {
    const e = this.entries.get(this.resolve(p, true));
    return e?.type === 'file' ? e.content.toString('utf8') : undefined;
  }

  private ensureParents(abs: string): void {
    let dir = path.dirname(abs);
    const missing: string[] = [];
    while (!this.entries.has(dir)) { missing.push(dir); dir = path.dirname(dir); }
    for (const d of missing.reverse()) this.entries.set(d, { type: 'dir', mode: 0o755, uid: 0, gid: 0 });
  }

  /** As a write's parents are made on a real file system: a file (or anything but a directory) on the way is ENOTDIR. */
  private makeParentDirs(abs: string, p: string): void {
    let dir = path.dirname(abs);
    while (!this.entries.has(dir)) dir = path.dirname(dir);
    if (this.entries.get(dir)!.type !== 'dir') throw new GuestError(`cannot write ${p}: ${dir} is not a directory`, p);
    this.ensureParents(abs);
  }

  /**
   * Resolve symlinks inside the map, as chroot would; `follow` applies to the last component.
   * A link target is walked component by component, not normalized first: `b -> b/../a`
   * meets `b` again (a loop), and `..` climbs from where the walk really is.
   */
  resolve(p: string, follow: boolean): string {
    if ((this.entries as Entries).links === 0) return p[0] === '/' && !hasDots(p) && !p.includes('//') && (p.length === 1 || !p.endsWith('/')) ? p : path.resolve('/', p);
    // `pending` is a stack (next component last); `at` is the walked prefix, "" for the root.
    // (A render-only plan asks ~90 paths per machine: no per-component arrays or joins.)
    // `.` and `..` of the path itself are lexical (path.resolve); in link targets they are walked
    const pending = components(hasDots(p) ? path.resolve('/', p) : p);
    let at = '';
    let hops = 0;
    while (pending.length) {
      const name = pending.pop()!;
      if (name === '.') continue;
      if (name === '..') { at = at.slice(0, at.lastIndexOf('/')); continue; }
      const here = at + '/' + name;
      const e = this.entries.get(here);
      if (e?.type === 'symlink' && (pending.length > 0 || follow)) {
        if (++hops > MAX_LINKS) throw new GuestError(`too many levels of symbolic links: ${p}`, p);
        if (e.target.startsWith('/')) at = '';
        pending.push(...components(e.target));
        continue;
      }
      at = here;
    }
    return at || '/';
  }

  private statOf(e: MemoryEntry | undefined): FileStat | null {
    if (!e) return null;
    if (e.type === 'symlink') return { type: 'symlink', mode: 0o777, uid: 0, gid: 0, size: e.target.length };
    if (e.type === 'dir') return { type: 'dir', mode: e.mode, uid: e.uid, gid: e.gid, size: 4096 };
    return { type: 'file', mode: e.mode, uid: e.uid, gid: e.gid, size: e.content.length };
  }

  async readFile(p: string, options: ReadOptions = {}): Promise<Buffer | null> {
    const e = this.entries.get(this.resolve(p, true));
    if (!e) return null;
    if (e.type !== 'file') throw new GuestError(`${p} is not a regular file`, p);
    if (e.content.length > (options.maxBytes ?? DEFAULT_MAX_READ)) throw new GuestError(`${p} is too large (${e.content.length} bytes)`, p);
    return Buffer.from(e.content);
  }
  async lstat(p: string): Promise<FileStat | null> { return this.statOf(this.entries.get(this.resolve(p, false))); }
  async stat(p: string): Promise<FileStat | null> { return this.statOf(this.entries.get(this.resolve(p, true))); }
  async readdir(p: string): Promise<string[] | null> {
    const dir = this.resolve(p, true);
    const e = this.entries.get(dir);
    if (!e) return null;
    if (e.type !== 'dir') return null;
    const prefix = dir === '/' ? '/' : dir + '/';
    return [...this.entries.keys()].filter((k) => k !== dir && k.startsWith(prefix) && !k.slice(prefix.length).includes('/')).map((k) => k.slice(prefix.length)).sort();
  }
  async readlink(p: string): Promise<string | null> {
    const e = this.entries.get(this.resolve(p, false));
    return e?.type === 'symlink' ? e.target : null;
  }

  private writable(p: string): string {
    if (this.readonly) throw new GuestError(`${this.description} is open read-only`, p);
    return this.resolve(p, false);
  }
  async writeFile(p: string, content: Buffer, attrs: WriteAttributes): Promise<void> {
    // as the rootfs and guestfs backends: a final symlink is replaced (never written through:
    // /etc/hostname -> /etc/shadow must not clobber shadow), a directory is refused
    const abs = this.writable(p);
    if (this.entries.get(abs)?.type === 'dir') throw new GuestError(`${p} is a directory`, p);
    this.makeParentDirs(abs, p);
    this.entries.set(abs, { type: 'file', content: Buffer.from(content), ...attrs });
  }
  async mkdir(p: string, attrs: WriteAttributes): Promise<void> {
    const abs = this.resolve(this.writable(p), true);
    if (this.entries.get(abs)?.type === 'dir') return;
    this.makeParentDirs(abs, p);
    this.entries.set(abs, { type: 'dir', ...attrs });
  }
  async remove(p: string, options: { recursive?: boolean } = {}): Promise<void> {
    const abs = this.writable(p);
    const e = this.entries.get(abs);
    if (!e) return;
    const prefix = abs + '/';
    const children = [...this.entries.keys()].filter((k) => k.startsWith(prefix));
    if (e.type === 'dir' && children.length && !options.recursive) throw new GuestError(`${p} is a non-empty directory`, p);
    for (const k of children) this.entries.delete(k);
    this.entries.delete(abs);
  }
  async symlink(target: string, p: string): Promise<void> {
    const abs = this.writable(p);
    this.makeParentDirs(abs, p);
    this.entries.set(abs, { type: 'symlink', target });
  }
  async rename(from: string, to: string): Promise<void> {
    const src = this.writable(from);
    const dst = this.writable(to);
    const e = this.entries.get(src);
    if (!e) throw new GuestError(`${from} does not exist`, from);
    if (src === '/' || dst === '/') throw new GuestError('cannot rename the guest root', from);
    if (dst.startsWith(src + '/')) throw new GuestError(`cannot move ${from} into itself`, from);
    const moved = [...this.entries].filter(([k]) => k === src || k.startsWith(src + '/'));
    this.makeParentDirs(dst, to); // before anything moves: a refused rename changes nothing
    await this.remove(to, { recursive: true });
    for (const [k] of moved) this.entries.delete(k);
    for (const [k, v] of moved) this.entries.set(dst + k.slice(src.length), v);
  }
  async chmod(p: string, mode: number): Promise<void> {
    const e = this.entries.get(this.resolve(this.writable(p), true));
    if (!e || e.type === 'symlink') throw new GuestError(`${p} does not exist`, p);
    (e as { mode: number }).mode = mode;
  }
  async chown(p: string, uid: number, gid: number): Promise<void> {
    const e = this.entries.get(this.resolve(this.writable(p), true));
    if (!e || e.type === 'symlink') throw new GuestError(`${p} does not exist`, p);
    Object.assign(e, { uid, gid });
  }
}
