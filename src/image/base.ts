/**
 * Where a restore or deploy takes its base from: a plain image path, or
 * `library:NAME` (checksum from the catalog, decrypted with its key when the
 * library stores it encrypted).
 */
import { existsSync } from 'node:fs';
import { mkdir, rmdir } from 'node:fs/promises';
import path from 'node:path';
import { GhostprepError } from '../util/errors.js';
import { decryptCopy, takeKeyFromEnv, type KeySource } from './decrypt.js';
import { verifyBase } from './restore.js';
import { defaultLibraryDir, findImage, imagePath, parseLibraryRef, type LibraryEntry } from './library.js';

export interface ResolvedBase { path: string; expectedSha256?: string; entry?: LibraryEntry }

export async function resolveBase(base: string, opts: { library?: string; key?: KeySource; clearDir?: string }): Promise<ResolvedBase> {
  const name = parseLibraryRef(base);
  if (!name) return { path: base };
  const dir = opts.library ?? defaultLibraryDir();
  const entry = findImage(dir, name);
  const file = imagePath(dir, entry);
  if (!existsSync(file)) throw new GhostprepError(`library image ${name}: file ${file} is missing`);
  if (!entry.encrypted) return { path: file, expectedSha256: entry.sha256, entry };
  // Encrypted at rest: check the stored file, then decrypt once into a clear
  // base next to the clones. Overlays on an encrypted backing file would need
  // the key in every later step (guestfish, the hypervisor) for their lifetime.
  if (!opts.key?.file && !opts.key?.env) throw new GhostprepError(`library image ${name} is encrypted: give its key with --key-file F or --key-env VAR`);
  if (!opts.clearDir) throw new GhostprepError(`library image ${name} is encrypted: restore it with --mode copy`);
  // taken out of the environment now, even when the clear copy is reused: the appliances come later
  if (opts.key.env) takeKeyFromEnv(opts.key.env);
  await verifyBase(file, entry.sha256);
  return { path: await clearCopy(file, entry, opts.clearDir, opts.key), entry };
}

/**
 * The clear copy of an encrypted library image in `clearDir`, decrypted unless
 * there already. Its name carries the encrypted file's sha256: after
 * `capture --force` replaces NAME, the next deploy decrypts the new content
 * into a new file instead of reusing the old one, and overlays already
 * backed by the old copy keep a backing file that never changes under them.
 * On failure (a wrong key) nothing is left: neither the copy nor the
 * directories made for it.
 */
export async function clearCopy(file: string, entry: LibraryEntry, clearDir: string, key: KeySource): Promise<string> {
  const clear = path.join(clearDir, `${entry.name}.${entry.sha256.slice(0, 16)}.qcow2`);
  if (existsSync(clear)) return clear;
  const made = await mkdirTracked(clearDir);
  try {
    await decryptCopy(file, clear, key);
  } catch (err) {
    // deepest first; a directory another process filled meanwhile stays
    for (const d of made.reverse()) await rmdir(d).catch(() => {});
    throw err;
  }
  return clear;
}

/** mkdir -p that returns the directories it created, outermost first; `dir` itself private (it holds clear images). */
async function mkdirTracked(dir: string): Promise<string[]> {
  const target = path.resolve(dir);
  const missing: string[] = [];
  for (let d = target; !existsSync(d); d = path.dirname(d)) missing.unshift(d);
  const made: string[] = [];
  for (const d of missing) {
    try {
      await mkdir(d, { mode: d === target ? 0o700 : 0o777 });
      made.push(d);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  return made;
}
