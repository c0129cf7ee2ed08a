/**
 * restore: one clone from a base image.
 *
 * - overlay: qcow2 whose backing file is the base (absolute path, backing
 *   format explicit, never probed): O(1), ~8 ms. The base is only ever
 *   opened read-only.
 * - copy: qemu-img convert to a standalone sparse qcow2, with progress.
 * - device: qemu-img convert onto a block device, only with `yes`.
 *
 * The base's sha256 is verified first when an expected value is given
 * (cached by size + mtime). An existing destination is never replaced
 * without `force`, and files are built under a temporary name in the same
 * directory and renamed at the end: a failed restore leaves nothing behind.
 * `size` grows the virtual disk, then the last partition and its filesystem.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { GhostprepError, GuestError } from '../util/errors.js';
import { processAlive } from '../util/process.js';
import { QEMU_IMG_INSTALL, requireTool } from '../util/tools.js';
import { GuestfsSession, type SessionOptions } from '../backends/guestfs/session.js';
import { cachedSha256, type Sha256Progress } from './checksum.js';
import { decryptInto, type KeySource } from './decrypt.js';
import { imageFormat } from '../backends/image-format.js';
import { growDrive, growDrives, type GrowResult } from './grow.js';

export { imageFormat } from '../backends/image-format.js';
export { sha256File, cachedSha256, defaultSha256Cache } from './checksum.js';
export { growDrive, growDrives, growFilesystem } from './grow.js';

export type RestoreMode = 'overlay' | 'copy' | 'device';

export interface RestoreProgress {
  readonly stage: 'verify' | 'copy' | 'resize';
  /** 0..1 */
  readonly fraction: number;
}

export interface RestoreOptions {
  readonly base: string;
  readonly to: string;
  readonly mode: RestoreMode;
  /** Format of the base; from its extension otherwise. */
  readonly baseFormat?: string;
  /** New virtual size, qemu-img syntax (`20G`, `512M`); grows partition and filesystem too. */
  readonly size?: string;
  readonly force?: boolean;
  /** Required for mode `device`. */
  readonly yes?: boolean;
  readonly expectedSha256?: string;
  /** JSON cache of base checksums; default ~/.cache/ghostprep/sha256.json. */
  readonly sha256Cache?: string;
  readonly onProgress?: (p: RestoreProgress) => void;
  /** Options for the appliance that grows the filesystem (verbose, timeouts). */
  readonly session?: SessionOptions;
}

export interface RestoreResult {
  readonly path: string;
  readonly mode: RestoreMode;
  readonly format: 'qcow2' | 'raw';
  readonly virtualSize: number;
  readonly baseSha256?: string;
  readonly grown?: GrowResult;
  readonly durationMs: number;
}

const SIZE_RE = /^\d+(\.\d+)?[KMGTPE]?$/i;

async function exists(p: string): Promise<boolean> {
  return fs.lstat(p).then(() => true, () => false);
}

async function qemuImg(args: readonly string[], onLine?: (line: string) => void): Promise<string> {
  requireTool('qemu-img', QEMU_IMG_INSTALL);
  const child = execa('qemu-img', args, { reject: false, buffer: { stdout: true, stderr: true } });
  if (onLine) child.stdout?.on('data', (d: Buffer) => d.toString('utf8').split(/[\r\n]/).forEach(onLine));
  const r = await child;
  if (r.exitCode !== 0) {
    throw new GhostprepError(`qemu-img ${args.join(' ')}: ${String(r.stderr).trim() || `exit code ${r.exitCode}`}`);
  }
  return String(r.stdout);
}

export async function virtualSize(image: string, format: string): Promise<number> {
  const info = JSON.parse(await qemuImg(['info', '-f', format, '--output=json', image])) as { 'virtual-size': number };
  return info['virtual-size'];
}

/** Verify the base against `expected`; returns the actual sha256. */
export async function verifyBase(base: string, expected: string, cacheFile?: string, onProgress?: (p: Sha256Progress) => void): Promise<string> {
  const { sha256 } = await cachedSha256(base, cacheFile, onProgress);
  if (sha256 !== expected.toLowerCase()) {
    throw new GuestError(`${base}: checksum mismatch: expected sha256 ${expected}, found ${sha256}; refusing to use this base`, base);
  }
  return sha256;
}

/** The base's real path, once the size, the destination and the base's checksum (when one is expected) are checked. */
async function checkedBase(options: RestoreOptions): Promise<{ base: string; baseSha256: string | undefined }> {
  const base = await fs.realpath(options.base).catch(() => {
    throw new GhostprepError(`${options.base}: base image not found`);
  });
  if (options.size !== undefined && !SIZE_RE.test(options.size)) throw new GhostprepError(`invalid size "${options.size}" (e.g. 20G, 512M)`);
  await checkDestination(base, options);
  const baseSha256 = options.expectedSha256
    ? await verifyBase(base, options.expectedSha256, options.sha256Cache, (p) => options.onProgress?.({ stage: 'verify', fraction: p.total ? p.bytes / p.total : 1 }))
    : undefined;
  return { base, baseSha256 };
}

export async function restore(options: RestoreOptions): Promise<RestoreResult> {
  const started = Date.now();
  const baseFormat = imageFormat(options.base, options.baseFormat);
  const { base, baseSha256 } = await checkedBase(options);
  const result = options.mode === 'device' ? await restoreDevice(base, baseFormat, options) : await restoreFile(base, baseFormat, options);
  return { ...result, mode: options.mode, ...(baseSha256 && { baseSha256 }), durationMs: Date.now() - started };
}

/**
 * restore --mode copy of an encrypted library image: checked against
 * `expectedSha256` (the encrypted file's), decrypted straight into the clone's
 * temp name, then resized and grown like any copy and renamed at the end.
 */
export async function restoreDecrypted(options: RestoreOptions & { readonly key: KeySource | undefined }): Promise<RestoreResult> {
  const started = Date.now();
  if (options.mode !== 'copy') throw new GhostprepError(`${options.base} is encrypted: restore it with --mode copy (the clone is written decrypted)`);
  if (!options.key?.file && !options.key?.env) throw new GhostprepError(`${options.base} is encrypted: give its key with --key-file F or --key-env VAR`);
  const { base, baseSha256 } = await checkedBase(options);
  const dest = path.resolve(options.to);
  await removeStaleTemps([options.to]);
  const tmp = tempName(dest);
  await decryptInto(base, tmp, options.key);
  try {
    if (options.size) await qemuImg(['resize', '-q', '-f', 'qcow2', tmp, options.size]);
    const grown = options.size ? await growInAppliance(tmp, 'qcow2', options) : undefined;
    const result = await finishFile(tmp, dest, grown);
    return { ...result, mode: 'copy', ...(baseSha256 && { baseSha256 }), durationMs: Date.now() - started };
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
}

async function checkDestination(base: string, o: RestoreOptions): Promise<void> {
  const dest = path.resolve(o.to);
  if ((await fs.realpath(dest).catch(() => dest)) === base) throw new GhostprepError(`${o.to} is the base image itself; the base is never written`);
  if (o.mode === 'device') {
    if (!o.yes) throw new GhostprepError(`restore to device ${o.to} overwrites it entirely: confirm with --yes`);
    const st = await fs.stat(dest).catch(() => undefined);
    if (!st?.isBlockDevice()) throw new GhostprepError(`${o.to} is not a block device`);
    await refuseMounted(dest);
    return;
  }
  if (!o.force && (await exists(dest))) throw new GhostprepError(`${o.to} exists; use --force to replace it`);
}

/** A block device (or one of its partitions) that is mounted must not be overwritten. */
async function refuseMounted(dev: string): Promise<void> {
  const mounts = await fs.readFile('/proc/mounts', 'utf8').catch(() => '');
  const real = await fs.realpath(dev);
  for (const line of mounts.split('\n')) {
    const src = line.split(' ')[0] ?? '';
    if (src.startsWith('/dev/') && (src === real || new RegExp(`^${real}p?\\d+$`).test(src))) {
      throw new GhostprepError(`${dev} is in use (${src} is mounted); refusing to overwrite it`);
    }
  }
}

async function restoreFile(base: string, baseFormat: string, o: RestoreOptions): Promise<Omit<RestoreResult, 'mode' | 'durationMs'>> {
  const dest = path.resolve(o.to);
  await removeStaleTemps([o.to]);
  const tmp = await buildFile(base, baseFormat, o);
  try {
    const grown = o.size ? await growInAppliance(tmp, 'qcow2', o) : undefined;
    return await finishFile(tmp, dest, grown);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
}

/** The clone under a temporary name next to its destination (resized, not grown yet); removed on failure. */
async function buildFile(base: string, baseFormat: string, o: RestoreOptions): Promise<string> {
  const tmp = tempName(path.resolve(o.to));
  try {
    if (o.mode === 'overlay') {
      await qemuImg(['create', '-q', '-f', 'qcow2', '-F', baseFormat, '-b', base, tmp, ...(o.size ? [o.size] : [])]);
    } else {
      await convertWithProgress(['convert', '-p', '-f', baseFormat, '-O', 'qcow2', base, tmp], o);
      if (o.size) await qemuImg(['resize', '-q', '-f', 'qcow2', tmp, o.size]);
    }
    return tmp;
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
}

/** A temp name next to `dest` that removeStaleTemps recognizes once its process is gone. */
function tempName(dest: string): string {
  return path.join(path.dirname(dest), `${tempPrefix(dest)}${process.pid}-${randomBytes(6).toString('hex')}`);
}

function tempPrefix(dest: string): string {
  return `.${path.basename(dest)}.ghostprep-`;
}

/** Legacy temp names (no pid) older than this are taken as left by a dead run. */
const LEGACY_TEMP_AGE_MS = 3600_000;

/**
 * Temp files of these destinations left by a run that was killed while
 * building them (`.NAME.qcow2.ghostprep-PID-RANDOM`, PID gone). A live run's
 * temp file is left alone: its process still exists. Each directory is read
 * once, however many clones go into it.
 */
async function removeStaleTemps(dests: readonly string[]): Promise<void> {
  const byDir = new Map<string, Set<string>>();
  for (const d of dests.map((x) => path.resolve(x))) {
    const dir = path.dirname(d);
    byDir.set(dir, (byDir.get(dir) ?? new Set()).add(path.basename(d)));
  }
  for (const [dir, bases] of byDir) {
    for (const name of await fs.readdir(dir).catch(() => [] as string[])) {
      const m = /^\.(.+)\.ghostprep-(.*)$/.exec(name);
      if (!m || !bases.has(m[1]!)) continue;
      const file = path.join(dir, name);
      const pid = /^(\d+)-[0-9a-f]+$/.exec(m[2]!);
      const stale = pid ? !processAlive(Number(pid[1])) : Date.now() - (await fs.lstat(file).then((st) => st.mtimeMs, () => Date.now())) > LEGACY_TEMP_AGE_MS;
      if (stale) await fs.rm(file, { force: true });
    }
  }
}

/** `size`: the clone's virtual size when known without asking qemu-img (an overlay not resized: the base's). */
async function finishFile(tmp: string, dest: string, grown: GrowResult | undefined, size?: number): Promise<Omit<RestoreResult, 'mode' | 'durationMs'>> {
  await fs.rename(tmp, dest);
  return { path: dest, format: 'qcow2', virtualSize: size ?? await virtualSize(dest, 'qcow2'), ...(grown && { grown }) };
}

export interface RestoreBatchOptions extends Omit<RestoreOptions, 'to' | 'mode' | 'yes' | 'onProgress'> {
  readonly mode: Exclude<RestoreMode, 'device'>;
  /** Destinations, one clone each. */
  readonly to: readonly string[];
  /** Called as each clone is built (before growing, which is done for the whole batch at once). */
  readonly onBuilt?: (to: string) => void;
}

/**
 * Restore many clones of one base: the base is checked once, each clone is
 * built under a temporary name, then with `size` ALL of them are grown in one
 * appliance (clones that could collide in one appliance, such as overlays of
 * an LVM base, get separate ones) and renamed into place. Returns, in the
 * order of `to`, each clone's result or the error that failed it alone;
 * throws only for what fails them all (base missing, bad size, checksum).
 */
export async function restoreBatch(options: RestoreBatchOptions): Promise<Array<RestoreResult | Error>> {
  const started = Date.now();
  const baseFormat = imageFormat(options.base, options.baseFormat);
  const base = await fs.realpath(options.base).catch(() => {
    throw new GhostprepError(`${options.base}: base image not found`);
  });
  if (options.size !== undefined && !SIZE_RE.test(options.size)) throw new GhostprepError(`invalid size "${options.size}" (e.g. 20G, 512M)`);
  const baseSha256 = options.expectedSha256 ? await verifyBase(base, options.expectedSha256, options.sha256Cache) : undefined;
  // overlays are a qemu-img process each (ms of work, mostly spawn): a few at once;
  // copies read the whole base: one at a time
  const tmps: Array<string | Error> = options.to.map(() => new GhostprepError('not built'));
  await removeStaleTemps(options.to);
  let next = 0;
  const builder = async (): Promise<void> => {
    while (next < options.to.length) {
      const i = next++;
      const o: RestoreOptions = { ...options, to: options.to[i]! };
      try {
        await checkDestination(base, o);
        tmps[i] = await buildFile(base, baseFormat, o);
        options.onBuilt?.(o.to);
      } catch (err) {
        tmps[i] = err instanceof Error ? err : new GhostprepError(String(err));
      }
    }
  };
  await Promise.all(Array.from({ length: options.mode === 'overlay' ? 4 : 1 }, builder));
  const built = tmps.map((t, i) => ({ i, t })).filter((x): x is { i: number; t: string } => typeof x.t === 'string');
  const grown = options.size
    ? await growDrives(built.map((x) => ({ path: x.t, format: 'qcow2', name: options.to[x.i]! })), options.session)
    : built.map(() => undefined);
  const results: Array<RestoreResult | Error> = tmps.map((t) => (t instanceof Error ? t : new GhostprepError('not restored')));
  // one qemu-img info for the batch instead of one per clone
  const sameSize = options.mode === 'overlay' && !options.size && built.length ? await virtualSize(base, baseFormat) : undefined;
  for (const [k, { i, t }] of built.entries()) {
    const g = grown[k];
    try {
      if (g instanceof Error) throw g;
      const r = await finishFile(t, path.resolve(options.to[i]!), g, sameSize);
      results[i] = { ...r, mode: options.mode, ...(baseSha256 && { baseSha256 }), durationMs: Date.now() - started };
    } catch (err) {
      await fs.rm(t, { force: true });
      results[i] = err instanceof Error ? err : new GhostprepError(String(err));
    }
  }
  return results;
}

async function restoreDevice(base: string, baseFormat: string, o: RestoreOptions): Promise<Omit<RestoreResult, 'mode' | 'durationMs'>> {
  const dev = path.resolve(o.to);
  // -n: the device exists; qemu-img must not try to create it.
  await convertWithProgress(['convert', '-p', '-n', '-f', baseFormat, '-O', 'raw', base, dev], o);
  const size = await virtualSize(dev, 'raw');
  const grown = size > (await virtualSize(base, baseFormat)) ? await growInAppliance(dev, 'raw', o) : undefined;
  return { path: dev, format: 'raw', virtualSize: size, ...(grown && { grown }) };
}

/** qemu-img -p prints "    (12.34/100%)" with carriage returns. */
async function convertWithProgress(args: readonly string[], o: RestoreOptions): Promise<void> {
  await qemuImg(args, (line) => {
    const m = /\((\d+(?:\.\d+)?)\/100%\)/.exec(line);
    if (m) o.onProgress?.({ stage: 'copy', fraction: Number(m[1]) / 100 });
  });
}

async function growInAppliance(image: string, format: string, o: RestoreOptions): Promise<GrowResult> {
  o.onProgress?.({ stage: 'resize', fraction: 0 });
  const session = await GuestfsSession.open({ ...o.session, drives: [{ path: image, format, readonly: false }] });
  try {
    const grown = await growDrive(session, 0, o.to);
    o.onProgress?.({ stage: 'resize', fraction: 1 });
    return grown;
  } finally {
    await session.close();
  }
}
