/**
 * Keys of encrypted library images, and decrypting such an image into a clear
 * standalone qcow2 (restore and deploy of an encrypted image). The key reaches
 * qemu-img as a secret object read from a file, never on a command line.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { GhostprepError } from '../util/errors.js';
import { QEMU_IMG_INSTALL, requireTool } from '../util/tools.js';
import { hostTempName, removeDeadHostTemps } from './host-temps.js';

export interface KeySource { file?: string; env?: string }

const keysFromEnv = new Map<string, string>();

/**
 * The key in variable `name`, taken out of this process's environment on the
 * first call so that no process ghostprep starts afterwards (qemu-img,
 * guestfish, ssh-keygen) inherits it; later calls return the same value.
 * Commands that start processes before they need the key call it first.
 */
export function takeKeyFromEnv(name: string): string {
  if (!keysFromEnv.has(name)) {
    const value = process.env[name];
    delete process.env[name];
    if (!value) throw new GhostprepError(`encryption key variable $${name} is empty or unset`);
    keysFromEnv.set(name, value);
  }
  return keysFromEnv.get(name)!;
}

/** A key file qemu can read: the given file, or a private temp file holding $ENV. */
export function keyFile(key: KeySource): { file: string; cleanup: () => void } | undefined {
  if (key.file) return { file: path.resolve(key.file), cleanup: () => {} };
  if (key.env) {
    const value = takeKeyFromEnv(key.env);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ghostprep-key-'));
    const file = path.join(dir, 'key');
    writeFileSync(file, value, { mode: 0o600 });
    chmodSync(dir, 0o700);
    return { file, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
  }
  return undefined;
}

/**
 * Write the clear content of encrypted `image` to `out` (a temp name the caller
 * renames into place). On failure `out` is removed and the error says whether
 * the key was wrong.
 */
export async function decryptInto(image: string, out: string, key: KeySource | undefined): Promise<void> {
  requireTool('qemu-img', QEMU_IMG_INSTALL);
  const k = key && keyFile(key);
  if (!k) throw new GhostprepError(`${image} is encrypted: give its key (--key-file F or --key-env VAR)`);
  try {
    await execa('qemu-img', ['convert', '--object', `secret,id=gpkey,file=${k.file}`, '--image-opts', `driver=qcow2,file.filename=${image},encrypt.key-secret=gpkey`, '-O', 'qcow2', out], { stdin: 'ignore' });
  } catch (err) {
    await rm(out, { force: true });
    const stderr = ((err as { stderr?: string }).stderr ?? '').trim();
    if (/Invalid password|cannot unlock/i.test(stderr)) throw new GhostprepError(`${image}: the key does not unlock this encrypted image (nothing was written)`);
    throw new GhostprepError(`cannot decrypt ${image}: ${stderr || (err as Error).message}`, { cause: err });
  } finally {
    k.cleanup();
  }
}

/** Decrypt `image` into `to` (written under a temp name, renamed at the end: a failure leaves nothing, a killed run's temp is removed by the next). */
export async function decryptCopy(image: string, to: string, key: KeySource | undefined): Promise<void> {
  await removeDeadHostTemps(path.dirname(to), 'decrypt');
  const tmp = hostTempName(to, 'decrypt');
  await decryptInto(image, tmp, key);
  try {
    await rename(tmp, to);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}
