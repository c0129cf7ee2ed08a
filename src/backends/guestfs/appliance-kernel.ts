/**
 * Under TCG, libguestfs's appliance boots from an uncompressed copy of the
 * host kernel. A distribution kernel is a bzImage that decompresses itself
 * (xz on Debian): about 4 s of emulated CPU at every launch, a quarter of a
 * launch's cost. QEMU starts an uncompressed vmlinux with a PVH entry point
 * directly, so ghostprep keeps one, made once per installed kernel, and hands
 * it to supermin (SUPERMIN_KERNEL and friends) with an appliance cache of its
 * own (LIBGUESTFS_CACHEDIR): supermin does not rebuild a cached appliance when
 * only the kernel choice changes, so the two kernels must not share a cache.
 *
 * Anything unexpected (no readable kernel, an unknown compression, a missing
 * decompressor, no PVH entry, a cache that cannot be written) leaves
 * libguestfs's own choice in place; the reason goes to --verbose.
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { errorMessage } from '../../util/errors.js';
import { compressedKernel, hasPvhEntry, type KernelCompression, type NotUsable } from './kernel-image.js';

/** Where the kernels and their appliances live: ${XDG_CACHE_HOME:-~/.cache}/ghostprep/appliance. */
export function applianceCacheBase(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'ghostprep', 'appliance');
}

export interface KernelPaths {
  /** Directory of vmlinuz-VERSION files (/boot). */
  readonly boot: string;
  /** Directory of VERSION module trees (/lib/modules). */
  readonly modules: string;
  readonly cacheBase: string;
}

export interface UncompressedKernel {
  /** What to add to guestfish's environment. */
  readonly env: { SUPERMIN_KERNEL: string; SUPERMIN_KERNEL_VERSION: string; SUPERMIN_MODULES: string; LIBGUESTFS_CACHEDIR: string };
  /** For --verbose: which kernel, where, and whether it was made just now. */
  readonly note: string;
}

interface HostKernel {
  readonly path: string;
  readonly version: string;
}

/** The vmlinuz-VERSION files of /boot (none when it cannot be read). */
function bootKernels(paths: KernelPaths): HostKernel[] {
  let names: string[];
  try {
    names = fs.readdirSync(paths.boot);
  } catch {
    return [];
  }
  return names.filter((n) => /^vmlinuz-\S+$/.test(n)).map((n) => ({ path: path.join(paths.boot, n), version: n.slice('vmlinuz-'.length) }));
}

/** The running kernel if /boot has it with its modules, else the newest such kernel (supermin's own rule). */
function hostKernel(paths: KernelPaths): HostKernel | undefined {
  const kernels = bootKernels(paths).filter((k) => fs.existsSync(path.join(paths.modules, k.version)));
  const running = kernels.find((k) => k.version === os.release());
  return running ?? kernels.sort((a, b) => b.version.localeCompare(a.version, 'en', { numeric: true }))[0];
}

/** The external decompressor per compression (all but lz4 come with libguestfs's own dependencies); gzip is done in-process. */
const DECOMPRESSORS: Record<Exclude<KernelCompression, 'gzip'>, readonly string[]> = {
  xz: ['xz', '-dc', '--single-stream'],
  lzma: ['xz', '--format=lzma', '-dc'],
  zstd: ['zstd', '-dcq'],
  bzip2: ['bzip2', '-dc'],
  lz4: ['lz4', '-dc'],
  lzo: ['lzop', '-dc'],
};

function decompress(compression: KernelCompression, payload: Buffer, size: number): Buffer | NotUsable {
  if (compression === 'gzip') return gunzipSync(payload);
  const [tool, ...args] = DECOMPRESSORS[compression];
  const r = spawnSync(tool!, args, { input: payload, maxBuffer: size + 1024 * 1024 });
  if (r.error || r.status !== 0) return { reason: `${tool} could not decompress it: ${r.error?.message ?? r.stderr.toString().trim()}` };
  return r.stdout;
}

/** vmlinux from a bzImage, checked: the size the build recorded, and a PVH entry QEMU can start. */
export function uncompressKernel(kernelFile: string): Buffer | NotUsable {
  const found = compressedKernel(fs.readFileSync(kernelFile));
  if ('reason' in found) return found;
  const vmlinux = decompress(found.compression, found.payload, found.size);
  if ('reason' in vmlinux) return vmlinux;
  if (vmlinux.length !== found.size) return { reason: `${found.compression} gave ${vmlinux.length} bytes where the kernel build recorded ${found.size}` };
  if (!hasPvhEntry(vmlinux)) return { reason: 'the uncompressed kernel has no PVH entry point (CONFIG_PVH), which QEMU needs to start it directly' };
  return vmlinux;
}

/** The cache entry's name: the kernel's version and what identifies this build of it. */
function entryName(kernel: HostKernel): string {
  const st = fs.statSync(kernel.path);
  const key = createHash('sha256').update(`${kernel.path}\0${st.size}\0${st.mtimeMs}`).digest('hex').slice(0, 12);
  return `${kernel.version}-${key}`;
}

/** Entries of kernels no longer in /boot (or rebuilt since) take an appliance's disk space each: remove them. */
function pruneStale(paths: KernelPaths, keep: ReadonlySet<string>): void {
  for (const name of fs.readdirSync(paths.cacheBase)) {
    if (!keep.has(name)) fs.rmSync(path.join(paths.cacheBase, name), { recursive: true, force: true });
  }
}

function installedEntries(paths: KernelPaths): Set<string> {
  return new Set(bootKernels(paths).map(entryName));
}

/**
 * The uncompressed kernel for the appliance, made on first use (about 1 s)
 * and written atomically, so concurrent ghostprep processes at worst both
 * make it.
 */
export function uncompressedKernel(paths: KernelPaths): UncompressedKernel | NotUsable {
  const kernel = hostKernel(paths);
  if (!kernel) return { reason: `no ${paths.boot}/vmlinuz-VERSION with modules in ${paths.modules}/VERSION` };
  try {
    const name = entryName(kernel);
    const dir = path.join(paths.cacheBase, name);
    const target = path.join(dir, 'vmlinux');
    let made = false;
    if (!fs.existsSync(target)) {
      const vmlinux = uncompressKernel(kernel.path);
      if ('reason' in vmlinux) return { reason: `${kernel.path}: ${vmlinux.reason}` };
      fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
      const temp = `${target}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
      fs.writeFileSync(temp, vmlinux, { mode: 0o644 });
      fs.renameSync(temp, target);
      pruneStale(paths, installedEntries(paths));
      made = true;
    }
    return {
      env: { SUPERMIN_KERNEL: target, SUPERMIN_KERNEL_VERSION: kernel.version, SUPERMIN_MODULES: path.join(paths.modules, kernel.version), LIBGUESTFS_CACHEDIR: dir },
      note: `libguestfs: the appliance boots ${kernel.path} uncompressed (${made ? 'made' : 'kept'} in ${dir}): no decompression under TCG`,
    };
  } catch (err) {
    return { reason: `${kernel.path}: ${errorMessage(err)}` };
  }
}

/** Variables that mean the user chose the appliance's kernel or cache; then ghostprep does not. */
export const USER_APPLIANCE_VARS = ['SUPERMIN_KERNEL', 'SUPERMIN_MODULES', 'SUPERMIN_KERNEL_VERSION', 'LIBGUESTFS_CACHEDIR', 'LIBGUESTFS_PATH'] as const;
