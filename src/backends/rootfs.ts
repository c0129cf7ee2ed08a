/**
 * The rootfs backend: a guest that is a directory tree (container images,
 * chroots, diskless/NFS roots, tests). Every path is resolved component by
 * component inside the root as chroot would: absolute symlinks restart at
 * the root, ".." stops at the root, so a hostile `etc -> /host/etc` or
 * `../../..` never leads outside. Files are opened with O_NOFOLLOW and
 * O_NONBLOCK so that a FIFO where a file is expected cannot hang us.
 */
import { constants, promises as fs } from 'node:fs';
import path from 'node:path';
import { GuestError } from '../util/errors.js';
import type { Backend, FileStat, Guest, GuestVisitor, OpenOptions, ReadOptions, TargetSpec, WriteAttributes } from '../core/backend.js';
import { DEFAULT_MAX_READ } from '../core/backend.js';

const MAX_LINKS = 40;

function statOf(st: import('node:fs').Stats): FileStat {
  const type = st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : 'other';
  return { type, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, size: st.size };
}

const errno = (err: unknown) => (err as NodeJS.ErrnoException).code;

/** What a failed host call means for the guest, without host paths in the message. */
const ERRNO_TEXT: Record<string, string> = {
  EPERM: 'operation not permitted (EPERM: an immutable or append-only file? see lsattr)',
  EACCES: 'permission denied (EACCES)',
  ENOSPC: 'no space left on the guest filesystem (ENOSPC)',
  EDQUOT: 'disk quota exceeded on the guest filesystem (EDQUOT)',
  EROFS: 'the guest filesystem is read-only (EROFS)',
  ENOTDIR: 'a parent is not a directory (ENOTDIR)',
  EISDIR: 'is a directory (EISDIR)',
  ENOTEMPTY: 'directory not empty (ENOTEMPTY)',
};

export class RootfsGuest implements Guest {
  readonly description: string;
  private warnedChown = false;
  constructor(readonly root: string, readonly readonly: boolean, private readonly onWarning: (msg: string) => void = () => {}) {
    this.root = path.resolve(root);
    this.description = `rootfs:${root}`;
  }

  /**
   * Host path of a guest path, symlinks resolved inside the root. With
   * follow=false the last component is not followed (lstat, rename onto it).
   */
  async resolve(guestPath: string, follow: boolean): Promise<string> {
    let pending = path.posix.resolve('/', guestPath).split('/').filter(Boolean);
    const done: string[] = [];
    let hops = 0;
    while (pending.length) {
      const name = pending.shift()!;
      if (name === '.') continue;
      if (name === '..') { done.pop(); continue; }
      const host = path.join(this.root, ...done, name);
      let st;
      try { st = await fs.lstat(host); } catch (err) {
        // Missing: keep walking. A later ".." can climb back out of the missing part onto
        // real components (`x -> missing/../evil`), and those must be resolved too: handing
        // the rest to the host kernel unresolved would follow `evil -> /host/path`.
        if (errno(err) === 'ENOENT' || errno(err) === 'ENOTDIR') { done.push(name); continue; }
        throw err;
      }
      if (st.isSymbolicLink() && (pending.length > 0 || follow)) {
        if (++hops > MAX_LINKS) throw new GuestError(`too many levels of symbolic links at ${guestPath}`, guestPath);
        const target = await fs.readlink(host);
        if (target.startsWith('/')) done.length = 0;
        pending = [...target.split('/').filter(Boolean), ...pending];
        continue;
      }
      done.push(name);
    }
    return path.join(this.root, ...done);
  }

  async readFile(p: string, options: ReadOptions = {}): Promise<Buffer | null> {
    const host = await this.resolve(p, true);
    let fh;
    try {
      fh = await fs.open(host, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch (err) {
      if (errno(err) === 'ENOENT' || errno(err) === 'ENOTDIR') return null;
      if (errno(err) === 'ELOOP') throw new GuestError(`${p}: symlink changed while reading`, p);
      throw new GuestError(`cannot read ${p}: ${(err as Error).message}`, p, { cause: err });
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw new GuestError(`${p} is not a regular file (${statOf(st).type})`, p);
      const max = options.maxBytes ?? DEFAULT_MAX_READ;
      if (st.size > max) throw new GuestError(`${p} is too large to read (${st.size} bytes, limit ${max})`, p);
      return await fh.readFile();
    } finally {
      await fh.close();
    }
  }

  private async statAt(p: string, follow: boolean): Promise<FileStat | null> {
    const host = await this.resolve(p, follow);
    try { return statOf(await fs.lstat(host)); } catch (err) {
      if (errno(err) === 'ENOENT' || errno(err) === 'ENOTDIR') return null;
      throw err;
    }
  }
  lstat(p: string): Promise<FileStat | null> { return this.statAt(p, false); }
  async stat(p: string): Promise<FileStat | null> {
    const st = await this.statAt(p, true);
    return st?.type === 'symlink' ? null : st;
  }
  async readdir(p: string): Promise<string[] | null> {
    try { return (await fs.readdir(await this.resolve(p, true))).sort(); } catch (err) {
      if (errno(err) === 'ENOENT' || errno(err) === 'ENOTDIR') return null;
      throw err;
    }
  }
  async readlink(p: string): Promise<string | null> {
    try { return await fs.readlink(await this.resolve(p, false)); } catch (err) {
      if (['ENOENT', 'EINVAL', 'ENOTDIR'].includes(errno(err)!)) return null;
      throw err;
    }
  }

  private guard(p: string): void {
    if (this.readonly) throw new GuestError(`${this.description} is open read-only (plan never writes)`, p);
  }

  /** Run a write; a host error becomes a GuestError saying what it means, not which host path failed. */
  private async hostOp<T>(p: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof GuestError) throw err;
      const code = errno(err);
      const text = (code && ERRNO_TEXT[code]) || (err as Error).message.split(this.root).join('');
      throw new GuestError(text, p, { cause: err });
    }
  }

  /** Parent directory resolved (and created), plus the final name, for rename-based writes. */
  private async parentOf(p: string): Promise<{ dir: string; name: string }> {
    const abs = path.posix.resolve('/', p);
    const parent = await this.resolve(path.posix.dirname(abs), true);
    await this.mkdirHost(parent);
    return { dir: parent, name: path.posix.basename(abs) };
  }

  private async mkdirHost(hostDir: string): Promise<void> {
    const rel = path.relative(this.root, hostDir);
    if (rel.startsWith('..')) throw new GuestError(`internal: ${hostDir} is outside the root`);
    let cur = this.root;
    for (const part of rel.split(path.sep).filter(Boolean)) {
      // resolve again at each level: a component may be a symlink inside the guest
      cur = await this.resolve('/' + path.relative(this.root, path.join(cur, part)).split(path.sep).join('/'), true);
      try { await fs.mkdir(cur, { mode: 0o755 }); } catch (err) { if (errno(err) !== 'EEXIST') throw err; }
    }
  }

  async writeFile(p: string, content: Buffer, attrs: WriteAttributes): Promise<void> {
    this.guard(p);
    return this.hostOp(p, () => this.writeFileHost(p, content, attrs));
  }

  private async writeFileHost(p: string, content: Buffer, attrs: WriteAttributes): Promise<void> {
    const { dir, name } = await this.parentOf(p);
    const dest = path.join(dir, name);
    const st = await fs.lstat(dest).catch(() => null);
    if (st?.isDirectory()) throw new GuestError(`${p} is a directory`, p);
    // a FIFO, device node or socket is not replaced behind the guest's back (the guestfs backend refuses them too)
    if (st && !st.isFile() && !st.isSymbolicLink()) throw new GuestError(`${p} exists and is not a regular file (${statOf(st).type})`, p);
    // a fixed name (one writer per machine: the state dir's lock): a temp file left by a killed run is replaced
    const tmp = path.join(dir, `.${name}.ghostprep-tmp`);
    await fs.rm(tmp, { force: true });
    const fh = await fs.open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    try {
      await fh.writeFile(content);
      await this.chownFh(fh, attrs.uid, attrs.gid);
      await fh.chmod(attrs.mode);
      await fh.sync();
    } catch (err) {
      await fh.close();
      await fs.rm(tmp, { force: true });
      throw err;
    }
    await fh.close();
    try {
      await fs.rename(tmp, dest);
    } catch (err) {
      await fs.rm(tmp, { force: true });
      throw err;
    }
  }

  private async chownFh(fh: import('node:fs/promises').FileHandle, uid: number, gid: number): Promise<void> {
    try { await fh.chown(uid, gid); } catch (err) {
      if (errno(err) !== 'EPERM') throw err;
      this.warnChown();
    }
  }

  private warnChown(): void {
    if (!this.warnedChown) this.onWarning(`${this.description}: not root, file owners are left as the current user`);
    this.warnedChown = true;
  }

  async mkdir(p: string, attrs: WriteAttributes): Promise<void> {
    this.guard(p);
    return this.hostOp(p, async () => {
      const { dir, name } = await this.parentOf(p);
      const host = path.join(dir, name);
      try { await fs.mkdir(host, { mode: attrs.mode }); } catch (err) { if (errno(err) !== 'EEXIST') throw err; }
    });
  }

  async remove(p: string, options: { recursive?: boolean } = {}): Promise<void> {
    this.guard(p);
    return this.hostOp(p, async () => {
      const { dir, name } = await this.parentOf(p);
      const host = path.join(dir, name);
      if (host === this.root) throw new GuestError('refusing to remove the guest root', p);
      const st = await fs.lstat(host).catch(() => null);
      if (!st) return;
      if (st.isDirectory()) await fs.rm(host, { recursive: !!options.recursive, force: true });
      else await fs.unlink(host);
    });
  }

  async symlink(target: string, p: string): Promise<void> {
    this.guard(p);
    return this.hostOp(p, async () => {
      const { dir, name } = await this.parentOf(p);
      const tmp = path.join(dir, `.${name}.ghostprep-link-${process.pid}`);
      await fs.rm(tmp, { force: true });
      await fs.symlink(target, tmp);
      await fs.rename(tmp, path.join(dir, name)).catch(async (err: unknown) => { await fs.rm(tmp, { force: true }); throw err; });
    });
  }

  async rename(from: string, to: string): Promise<void> {
    this.guard(from);
    return this.hostOp(from, async () => {
      const src = await this.resolve(from, false);
      const dst = await this.resolve(to, false);
      if (src === this.root || dst === this.root) throw new GuestError('refusing to rename the guest root', from);
      await fs.rename(src, dst);
    });
  }

  async chmod(p: string, mode: number): Promise<void> {
    this.guard(p);
    return this.hostOp(p, async () => fs.chmod(await this.resolve(p, true), mode));
  }

  async chown(p: string, uid: number, gid: number): Promise<void> {
    this.guard(p);
    return this.hostOp(p, async () => {
      try { await fs.lchown(await this.resolve(p, true), uid, gid); } catch (err) {
        if (errno(err) !== 'EPERM') throw err;
        this.warnChown();
      }
    });
  }
}

export class RootfsBackend implements Backend {
  readonly name = 'rootfs';
  constructor(private readonly onWarning: (msg: string) => void = () => {}) {}
  async forEachGuest(targets: readonly TargetSpec[], options: OpenOptions, visit: GuestVisitor): Promise<void> {
    const jobs = Math.max(1, options.jobs ?? 4);
    let next = 0;
    const worker = async () => {
      while (next < targets.length) {
        const t = targets[next++]!;
        let guest: RootfsGuest | Error;
        try {
          const st = await fs.stat(t.path);
          if (!st.isDirectory()) throw new GuestError(`rootfs target ${t.path} is not a directory`);
          guest = new RootfsGuest(t.path, options.readonly, this.onWarning);
        } catch (err) {
          guest = errno(err) === 'ENOENT' ? new GuestError(`rootfs target ${t.path} does not exist`) : (err as Error);
        }
        await visit(t, guest);
      }
    };
    await Promise.all(Array.from({ length: Math.min(jobs, targets.length) }, worker));
  }
}
