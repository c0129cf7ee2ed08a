/**
 * The image library: DIR/library.yaml lists captured images with their
 * checksum and metadata. Every change takes DIR/.library.lock (created with
 * O_EXCL; a lock whose process is gone is taken over) and rewrites the file
 * atomically, so two captures at once cannot lose an entry.
 */
import { existsSync, readFileSync, renameSync, writeFileSync, mkdirSync } from 'node:fs';
import { rename } from 'node:fs/promises';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { GhostprepError } from '../util/errors.js';
import { withFileLock } from '../util/file-lock.js';

export interface LibraryEntry {
  name: string;
  file: string;
  format: string;
  virtualSize: number;
  sha256: string;
  compression: 'zstd' | 'zlib' | 'none';
  encrypted: boolean;
  created: string;
  sealed: boolean;
  source: string;
  notes: string;
}

export interface LibraryFile { version: 1; images: LibraryEntry[] }

export function defaultLibraryDir(): string {
  return process.env.GHOSTPREP_LIBRARY || './images';
}

export function libraryFile(dir: string): string {
  return path.join(dir, 'library.yaml');
}

export function readLibrary(dir: string): LibraryFile {
  const file = libraryFile(dir);
  if (!existsSync(file)) return { version: 1, images: [] };
  let data: unknown;
  try { data = parse(readFileSync(file, 'utf8')); } catch (err) {
    throw new GhostprepError(`${file}: not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  const images = (data as LibraryFile | null)?.images;
  if (!Array.isArray(images)) throw new GhostprepError(`${file}: expected "images:" with a list of entries`);
  return { version: 1, images };
}

export function findImage(dir: string, name: string): LibraryEntry {
  const lib = readLibrary(dir);
  const e = lib.images.find((i) => i.name === name);
  if (!e) throw new GhostprepError(`library ${dir}: no image "${name}" (have: ${lib.images.map((i) => i.name).join(', ') || 'none'})`);
  return e;
}

export function imagePath(dir: string, e: LibraryEntry): string {
  return path.resolve(dir, e.file);
}

/** `library:NAME` -> entry, else undefined. */
export function parseLibraryRef(base: string): string | undefined {
  return base.startsWith('library:') ? base.slice('library:'.length) : undefined;
}

/** Run `fn` holding the library lock (DIR/.library.lock); waits up to `timeoutMs` for another holder. */
export async function withLibraryLock<T>(dir: string, fn: () => Promise<T> | T, timeoutMs = 120_000): Promise<T> {
  mkdirSync(dir, { recursive: true });
  return withFileLock(path.join(dir, '.library.lock'), `library ${dir}`, fn, timeoutMs);
}

/**
 * The last step of a capture, as one locked step: check the name again, rename
 * the finished temp file `tmp` to DIR/entry.file and record the entry. Two
 * captures of one name (with --force) then end as one file and the entry with
 * its own checksum, never one run's file under the other's sha256; without
 * `replace` the second one fails and its temp file stays for the caller to remove.
 */
export async function commitCapture(dir: string, tmp: string, entry: LibraryEntry, options: { replace?: boolean } = {}): Promise<void> {
  await withLibraryLock(dir, async () => {
    const lib = readLibrary(dir);
    refuseTaken(dir, lib, entry.name, options.replace);
    await rename(tmp, path.join(dir, entry.file));
    writeWithEntry(dir, lib, entry);
  });
}

/** Throws when the library already has `name` and it may not be replaced. */
export function refuseTaken(dir: string, lib: LibraryFile, name: string, replace?: boolean): void {
  if (!replace && lib.images.some((e) => e.name === name)) throw new GhostprepError(`library ${dir} already has an image "${name}" (use --force to replace it)`);
}

/** Rewrite the catalog `lib` (as just read) with `entry` added or replaced; the caller holds the lock. */
function writeWithEntry(dir: string, lib: LibraryFile, entry: LibraryEntry): void {
  const i = lib.images.findIndex((e) => e.name === entry.name);
  if (i >= 0) lib.images[i] = entry; else lib.images.push(entry);
  lib.images.sort((a, b) => a.name.localeCompare(b.name));
  const file = libraryFile(dir);
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, '# ghostprep image library (written by ghostprep capture; edit notes freely)\n' + stringify(lib));
  renameSync(tmp, file);
}
