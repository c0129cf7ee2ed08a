/**
 * capture: a sealed master becomes a library image. qemu-img converts it to
 * a zstd-compressed qcow2, or to a LUKS-encrypted qcow2 when a key is given
 * (qcow2 cannot compress and encrypt at once). The key reaches qemu-img as
 * a secret object read from a file, never on a command line.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { GhostprepError } from '../util/errors.js';
import { sha256File } from './checksum.js';
import { imageFormat } from './format.js';
import { addEntry, readLibrary, type LibraryEntry } from './library.js';
import { virtualSize } from './restore.js';

export interface KeySource { file?: string; env?: string }

/** A key file qemu can read: the given file, or a private temp file holding $ENV. */
export function keyFile(key: KeySource): { file: string; cleanup: () => void } | undefined {
  if (key.file) return { file: path.resolve(key.file), cleanup: () => {} };
  if (key.env) {
    const value = process.env[key.env];
    if (!value) throw new GhostprepError(`encryption key variable $${key.env} is empty or unset`);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ghostprep-key-'));
    const file = path.join(dir, 'key');
    writeFileSync(file, value, { mode: 0o600 });
    chmodSync(dir, 0o700);
    return { file, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
  }
  return undefined;
}

export interface CaptureOptions {
  readonly source: string;
  readonly library: string;
  readonly name: string;
  readonly compress: 'zstd' | 'zlib' | 'none';
  readonly key?: KeySource;
  readonly sealed: boolean;
  readonly notes?: string;
  readonly force?: boolean;
  readonly onProgress?: (fraction: number) => void;
}

export async function capture(o: CaptureOptions): Promise<LibraryEntry> {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(o.name)) throw new GhostprepError(`image name "${o.name}": use letters, digits, ".", "_" and "-"`);
  if (!o.force && readLibrary(o.library).images.some((e) => e.name === o.name)) throw new GhostprepError(`library ${o.library} already has an image "${o.name}" (use --force to replace it)`);
  const format = imageFormat(o.source);
  const file = `${o.name}.qcow2`;
  const dest = path.join(o.library, file);
  const tmp = path.join(o.library, `.${file}.capture-${process.pid}`);
  const key = o.key ? keyFile(o.key) : undefined;
  const encrypted = !!key;
  const compression = encrypted ? 'none' : o.compress;
  const args = ['convert', '-p', '-f', format, '-O', 'qcow2'];
  if (key) args.splice(1, 0, '--object', `secret,id=gpkey,file=${key.file}`);
  const opts = key ? ['encrypt.format=luks', 'encrypt.key-secret=gpkey'] : compression !== 'none' ? [`compression_type=${compression}`] : [];
  if (compression !== 'none') args.push('-c');
  if (opts.length) args.push('-o', opts.join(','));
  args.push(o.source, tmp);
  try {
    await import('node:fs/promises').then((fs) => fs.mkdir(o.library, { recursive: true }));
    // LUKS creation times PBKDF2 on this CPU; on a loaded machine qemu-img can
    // fail with "Unable to get accurate CPU usage": that is worth another try.
    for (let attempt = 1; ; attempt++) {
      try {
        await convert(args, o.onProgress);
        break;
      } catch (err) {
        if (attempt >= 3 || !/accurate CPU usage/.test(String((err as { stderr?: string }).stderr))) throw err;
        await rm(tmp, { force: true });
      }
    }
    const sha256 = await sha256File(tmp);
    const size = await virtualSize(tmp, 'qcow2').catch(async () => (await stat(o.source)).size);
    await rename(tmp, dest);
    const entry: LibraryEntry = {
      name: o.name, file, format: 'qcow2', virtualSize: size, sha256, compression, encrypted,
      created: new Date().toISOString(), sealed: o.sealed, source: path.resolve(o.source), notes: o.notes ?? '',
    };
    await addEntry(o.library, entry, { replace: o.force });
    return entry;
  } catch (err) {
    await rm(tmp, { force: true });
    const stderr = (err as { stderr?: string }).stderr;
    throw new GhostprepError(`capture of ${o.source} failed: ${stderr?.trim() || (err as Error).message}`, { cause: err });
  } finally {
    key?.cleanup();
  }
}

async function convert(args: string[], onProgress?: (fraction: number) => void): Promise<void> {
  const child = execa('qemu-img', args, { stdin: 'ignore', buffer: { stdout: false } });
  child.stdout?.on('data', (d: Buffer) => {
    const m = /\((\d+(?:\.\d+)?)\/100%\)/.exec(d.toString());
    if (m) onProgress?.(Number(m[1]) / 100);
  });
  await child;
}

/** Decrypt an encrypted library image into a clear standalone qcow2 (restore of an encrypted image). */
export async function decryptCopy(image: string, to: string, key: KeySource): Promise<void> {
  const k = keyFile(key);
  if (!k) throw new GhostprepError(`${image} is encrypted: give its key (--key-file F or --key-env VAR)`);
  const tmp = path.join(path.dirname(to), `.${path.basename(to)}.restore-${process.pid}`);
  try {
    await execa('qemu-img', ['convert', '--object', `secret,id=gpkey,file=${k.file}`, '--image-opts', `driver=qcow2,file.filename=${image},encrypt.key-secret=gpkey`, '-O', 'qcow2', tmp], { stdin: 'ignore' });
    await rename(tmp, to);
  } catch (err) {
    await rm(tmp, { force: true });
    const stderr = ((err as { stderr?: string }).stderr ?? '').trim();
    if (/Invalid password|cannot unlock/i.test(stderr)) throw new GhostprepError(`${image}: the key does not unlock this encrypted image (nothing was written)`);
    throw new GhostprepError(`cannot decrypt ${image}: ${stderr || (err as Error).message}`, { cause: err });
  } finally {
    k.cleanup();
  }
}
