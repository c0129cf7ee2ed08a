/**
 * capture: a sealed master becomes a library image. qemu-img converts it to
 * a zstd-compressed qcow2, or to a LUKS-encrypted qcow2 when a key is given
 * (qcow2 cannot compress and encrypt at once). The key reaches qemu-img as
 * a secret object read from a file, never on a command line.
 */
import { mkdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { GhostprepError } from '../util/errors.js';
import { QEMU_IMG_INSTALL, requireTool } from '../util/tools.js';
import { sha256File } from './checksum.js';
import { keyFile, type KeySource } from './decrypt.js';
import { imageFormat } from '../backends/image-format.js';
import { hostTempName, removeDeadHostTemps } from './host-temps.js';
import { commitCapture, readLibrary, refuseTaken, type LibraryEntry } from './library.js';
import { virtualSize } from './restore.js';

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

/** Tries of an encrypted capture that qemu-img's PBKDF2 timing refuses (each independent). */
const CPU_TIMING_TRIES = 20;

export async function capture(o: CaptureOptions): Promise<LibraryEntry> {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(o.name)) throw new GhostprepError(`image name "${o.name}": use letters, digits, ".", "_" and "-"`);
  // checked early to fail before a long convert, and again under the lock at the end
  refuseTaken(o.library, readLibrary(o.library), o.name, o.force);
  requireTool('qemu-img', QEMU_IMG_INSTALL);
  const format = imageFormat(o.source);
  const file = `${o.name}.qcow2`;
  const tmp = hostTempName(path.join(o.library, file), 'capture');
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
    await mkdir(o.library, { recursive: true });
    await removeDeadHostTemps(o.library, 'capture');
    // LUKS creation times a first PBKDF2 round on the thread's CPU clock; when that round
    // ends within one clock tick, qemu-img (7.x) fails at once with "Unable to get accurate
    // CPU usage" (seen on 1 run in 6 on a quiet host). It fails before converting anything,
    // so another try costs milliseconds: up to CPU_TIMING_TRIES of them.
    for (let attempt = 1; ; attempt++) {
      try {
        await convert(args, o.onProgress);
        break;
      } catch (err) {
        if (attempt >= CPU_TIMING_TRIES || !/accurate CPU usage/.test(String((err as { stderr?: string }).stderr))) throw err;
        await rm(tmp, { force: true });
      }
    }
    const sha256 = await sha256File(tmp);
    const size = await virtualSize(tmp, 'qcow2').catch(async () => (await stat(o.source)).size);
    const entry: LibraryEntry = {
      name: o.name, file, format: 'qcow2', virtualSize: size, sha256, compression, encrypted,
      created: new Date().toISOString(), sealed: o.sealed, source: path.resolve(o.source), notes: o.notes ?? '',
    };
    await commitCapture(o.library, tmp, entry, { replace: o.force });
    return entry;
  } catch (err) {
    await rm(tmp, { force: true });
    if (err instanceof GhostprepError && !(err as { stderr?: string }).stderr) throw err;
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
