/**
 * Reading a Windows clone back host-side, without an appliance: the NTFS
 * partition of the qcow2 is converted to a raw file (qemu-img, through the
 * backing chain) and every file of it is copied out with ntfs-3g's own
 * tools (ntfsls, ntfscat), a reader independent of the libguestfs path
 * ghostprep writes through. The tree lands in a host directory that a
 * read-only RootfsGuest opens, so the checks read the clone's real bytes
 * with hivexget, hivexregedit and xmllint, and inspect it with the same
 * code `ghostprep inspect` runs.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { RootfsGuest } from '../../src/backends/rootfs.js';

/** Start of partition 1 of the test images (image.ts: sfdisk start=2048). */
const PARTITION_OFFSET = 2048 * 512;

/** Every path of the volume (ntfsls -R: "/dir:" headers, then one name per line; "dir/" for directories). */
async function listTree(part: string): Promise<{ dirs: string[]; files: string[] }> {
  const out = (await execa('ntfsls', ['-R', '-a', '-F', '-p', '/', part])).stdout;
  const dirs: string[] = [];
  const files: string[] = [];
  let dir = '/';
  for (const line of out.split('\n')) {
    if (!line.trim()) continue;
    const header = /^(\/.*):$/.exec(line);
    if (header) { dir = header[1]!; continue; }
    if (line === './' || line === '../' || line.startsWith('$')) continue;
    const full = path.posix.join(dir, line.replace(/\/$/, ''));
    (line.endsWith('/') ? dirs : files).push(full);
  }
  return { dirs, files };
}

/** The clone's NTFS volume copied into `dir`/root, opened read-only. */
export async function readNtfsClone(image: string, dir: string): Promise<RootfsGuest> {
  await fs.mkdir(dir, { recursive: true });
  const part = path.join(dir, 'part.raw');
  await execa('qemu-img', ['convert', '-O', 'raw', '--image-opts', `driver=raw,offset=${PARTITION_OFFSET},file.driver=qcow2,file.file.driver=file,file.file.filename=${path.resolve(image)}`, part]);
  const root = path.join(dir, 'root');
  const { dirs, files } = await listTree(part);
  for (const d of dirs) await fs.mkdir(path.join(root, d), { recursive: true });
  await fs.mkdir(root, { recursive: true });
  for (const f of files) {
    const { stdout } = await execa('ntfscat', [part, f], { encoding: 'buffer', stripFinalNewline: false });
    await fs.writeFile(path.join(root, f), stdout);
  }
  await fs.rm(part);
  return new RootfsGuest(root, true);
}
