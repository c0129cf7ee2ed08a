/**
 * Where a restore or deploy takes its base from: a plain image path, or
 * `library:NAME` (checksum from the catalog, decrypted with its key when the
 * library stores it encrypted).
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { GhostprepError } from '../util/errors.js';
import { decryptCopy, type KeySource } from './capture.js';
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
  await verifyBase(file, entry.sha256);
  await mkdir(opts.clearDir, { recursive: true, mode: 0o700 });
  const clear = path.join(opts.clearDir, `${name}.qcow2`);
  if (!existsSync(clear)) await decryptCopy(file, clear, opts.key);
  return { path: clear, entry };
}
