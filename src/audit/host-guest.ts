/**
 * A read-only guest opened host-side: the ext filesystems of a disk image,
 * mounted as the guest's /etc/fstab says, behind the GuestReader interface.
 * audit reads most clones this way, in milliseconds and without an
 * appliance; a guest this cannot open exactly (root on LVM, LUKS, xfs or
 * btrfs, a journal that needs recovery, an fstab mount of /etc, /usr or /var
 * it cannot place) yields undefined and is read in an appliance instead.
 *
 * Paths resolve as if chrooted: absolute symlink targets restart at the
 * guest's root, ".." never climbs above it.
 */
import type { FileStat, GuestReader, ReadOptions } from '../core/backend.js';
import { DEFAULT_MAX_READ } from '../core/backend.js';
import { readPartitionTable } from '../backends/guestfs/lvm-probe.js';
import { GuestError } from '../util/errors.js';
import { ExtFs, ExtUnsupported, type ExtInode } from './ext.js';
import type { DiskIdentity, Reader } from './headers.js';

/** Mount points under which audit reads: an fstab entry for one of these (or below /etc, /var/lib) must be placed. */
const RELEVANT = ['/etc', '/usr', '/usr/lib', '/var', '/var/lib'];
const relevant = (mp: string) => RELEVANT.includes(mp) || mp.startsWith('/etc/') || mp.startsWith('/var/lib/');
const MAX_LINKS = 40;

interface Node { fs: ExtFs; inode: ExtInode }

export class HostGuest implements GuestReader {
  private constructor(private readonly mounts: ReadonlyArray<{ path: string; fs: ExtFs }>) {}

  /**
   * Open the guest on the disk behind `read`, given its header identities;
   * undefined when it cannot be read exactly host-side.
   */
  static async open(read: Reader, disk: DiskIdentity): Promise<HostGuest | undefined> {
    try {
      const table = await readPartitionTable(read);
      if (!table.exact) return undefined;
      const offsets = new Map<string, number>([['disk', 0], ...table.entries.map((e): [string, number] => [String(e.number), e.offset])]);
      const volumes = disk.volumes.filter((v) => v.kind === 'ext');
      const fss = new Map<string, ExtFs>();
      for (const v of volumes) {
        if (!offsets.has(v.partition)) continue; // on a logical volume: read in an appliance
        const fs = await ExtFs.open(read, offsets.get(v.partition)!);
        if (fs) fss.set(v.partition, fs);
      }
      // the root: the one ext filesystem with /etc/fstab and an os-release
      const roots: ExtFs[] = [];
      for (const fs of fss.values()) {
        const g = new HostGuest([{ path: '/', fs }]);
        if ((await g.lstat('/etc/fstab')) && ((await g.stat('/etc/os-release')) ?? (await g.lstat('/usr/lib/os-release')))) roots.push(fs);
      }
      if (roots.length !== 1) return undefined;
      const root = new HostGuest([{ path: '/', fs: roots[0]! }]);
      const fstab = (await root.readFile('/etc/fstab', { maxBytes: 1024 * 1024 }))?.toString('utf8') ?? '';
      const mounts: Array<{ path: string; fs: ExtFs }> = [{ path: '/', fs: roots[0]! }];
      for (const line of fstab.split('\n')) {
        const f = line.replace(/#.*/, '').trim().split(/\s+/);
        if (f.length < 2 || !f[1]!.startsWith('/')) continue;
        const mp = f[1]!.replace(/\/+$/, '') || '/';
        if (mp === '/' || !relevant(mp)) continue;
        const part = placeSource(f[0]!, disk);
        const fs = part ? fss.get(part) : undefined;
        if (!fs) return undefined;
        mounts.push({ path: mp, fs });
      }
      return new HostGuest(mounts);
    } catch (err) {
      if (err instanceof ExtUnsupported) return undefined;
      throw err;
    }
  }

  private mountAt(p: string): ExtFs | undefined {
    return this.mounts.find((m) => m.path === p)?.fs;
  }

  /** The node at a guest path, symlinks followed except (when `follow` is false) the last; null when absent. */
  private async resolve(p: string, follow: boolean): Promise<Node | null> {
    if (!p.startsWith('/')) throw new GuestError(`not an absolute guest path: ${p}`, p);
    const todo = p.split('/').filter(Boolean);
    const done: string[] = [];
    let links = 0;
    const rootFs = this.mountAt('/')!;
    let node: Node = { fs: rootFs, inode: await rootFs.inode(2) };
    const walk = async (parts: string[]): Promise<Node | null> => {
      let n: Node = { fs: rootFs, inode: await rootFs.inode(2) };
      for (let i = 0; i < parts.length; i++) {
        const here = '/' + parts.slice(0, i + 1).join('/');
        const mounted = this.mountAt(here);
        if (mounted) { n = { fs: mounted, inode: await mounted.inode(2) }; continue; }
        if (n.inode.type !== 'dir') return null;
        const ino = (await n.fs.entries(n.inode)).get(parts[i]!);
        if (!ino) return null;
        n = { fs: n.fs, inode: await n.fs.inode(ino) };
      }
      return n;
    };
    while (todo.length) {
      const part = todo.shift()!;
      if (part === '.') continue;
      if (part === '..') { done.pop(); node = (await walk(done))!; continue; }
      if (node.inode.type !== 'dir') return null;
      const here = '/' + [...done, part].join('/');
      const mounted = this.mountAt(here);
      let next: Node;
      if (mounted) next = { fs: mounted, inode: await mounted.inode(2) };
      else {
        const ino = (await node.fs.entries(node.inode)).get(part);
        if (!ino) return null;
        next = { fs: node.fs, inode: await node.fs.inode(ino) };
      }
      if (next.inode.type === 'symlink' && (todo.length || follow)) {
        if (++links > MAX_LINKS) throw new GuestError(`too many levels of symbolic links: ${p}`, p);
        const target = await next.fs.readlink(next.inode);
        if (target.startsWith('/')) { done.length = 0; node = { fs: rootFs, inode: await rootFs.inode(2) }; }
        todo.unshift(...target.split('/').filter(Boolean));
        continue;
      }
      done.push(part);
      node = next;
    }
    return node;
  }

  private static stat(n: Node | null): FileStat | null {
    return n ? { type: n.inode.type, mode: n.inode.mode, uid: n.inode.uid, gid: n.inode.gid, size: n.inode.size } : null;
  }

  async readFile(p: string, options: ReadOptions = {}): Promise<Buffer | null> {
    const n = await this.resolve(p, true);
    if (!n) return null;
    if (n.inode.type !== 'file') throw new GuestError(`${p} is not a regular file (${n.inode.type})`, p);
    const max = options.maxBytes ?? DEFAULT_MAX_READ;
    if (n.inode.size > max) throw new GuestError(`${p} is too large to read (${n.inode.size} bytes, limit ${max})`, p);
    return n.fs.data(n.inode, max);
  }

  async lstat(p: string): Promise<FileStat | null> { return HostGuest.stat(await this.resolve(p, false)); }
  async stat(p: string): Promise<FileStat | null> { return HostGuest.stat(await this.resolve(p, true)); }

  async readdir(p: string): Promise<string[] | null> {
    const n = await this.resolve(p, true);
    if (!n || n.inode.type !== 'dir') return null;
    const names = [...(await n.fs.entries(n.inode)).keys()];
    // a mount point below this directory shows as its entry even if the directory lacks it
    const prefix = p.replace(/\/+$/, '') + '/';
    for (const m of this.mounts) {
      const rest = m.path.startsWith(prefix) ? m.path.slice(prefix.length) : '';
      if (rest && !rest.includes('/')) names.push(rest);
    }
    return [...new Set(names)].sort();
  }

  async readlink(p: string): Promise<string | null> {
    const n = await this.resolve(p, false);
    return n?.inode.type === 'symlink' ? n.fs.readlink(n.inode) : null;
  }
}

/** The partition an fstab source names (UUID=, PARTUUID=, /dev/disk/by-uuid/…), if this disk has it. */
function placeSource(source: string, disk: DiskIdentity): string | undefined {
  const uuid = /^(?:UUID=|\/dev\/disk\/by-uuid\/)"?([0-9a-fA-F-]+)"?$/.exec(source)?.[1]?.toLowerCase();
  if (uuid) return disk.volumes.find((v) => v.kind === 'ext' && v.uuid === uuid)?.partition;
  const partuuid = /^(?:PARTUUID=|\/dev\/disk\/by-partuuid\/)"?([0-9a-fA-F-]+)"?$/.exec(source)?.[1]?.toLowerCase();
  if (partuuid) { const p = disk.gptPartitionGuids.find((g) => g.guid === partuuid); return p ? String(p.partition) : undefined; }
  return undefined;
}
