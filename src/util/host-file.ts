/**
 * Reading files of the host that the input names (profiles, inventories,
 * templates, `source:` files, key files, site secrets). Every such read goes
 * through here, so that no input can make ghostprep block or read without
 * bound: the file is opened without blocking (a FIFO never waits for a
 * writer), must be a regular file (not /dev/zero, a socket or a directory),
 * and must not be larger than the cap, checked before and while reading.
 */
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';

/** Default cap for files named by the input: 16 MiB. */
export const HOST_FILE_MAX_BYTES = 16 * 1024 * 1024;

export interface HostFileOptions {
  /** Largest accepted size in bytes (default HOST_FILE_MAX_BYTES). */
  readonly maxBytes?: number;
  /** What the file is, for messages ("source file", "template"). */
  readonly what?: string;
}

/** A host file that cannot be read as asked; `reason` is the message without the path. */
export class HostFileError extends Error {
  constructor(readonly file: string, readonly reason: string, readonly code?: string) {
    super(`${file}: ${reason}`);
    this.name = 'HostFileError';
  }
}

function describeType(st: import('node:fs').Stats): string {
  if (st.isDirectory()) return 'is a directory';
  if (st.isFIFO()) return 'is a FIFO (named pipe), not a regular file';
  if (st.isCharacterDevice()) return 'is a character device, not a regular file';
  if (st.isBlockDevice()) return 'is a block device, not a regular file';
  if (st.isSocket()) return 'is a socket, not a regular file';
  return 'is not a regular file';
}

/** The contents of a regular host file of at most `maxBytes`; throws HostFileError otherwise. */
export function readHostFile(file: string, options: HostFileOptions = {}): Buffer {
  const max = options.maxBytes ?? HOST_FILE_MAX_BYTES;
  const what = options.what ? `${options.what} ` : '';
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'file not found' : code === 'EACCES' ? 'permission denied' : code === 'ELOOP' ? 'too many levels of symbolic links' : (err as Error).message;
    throw new HostFileError(file, why, code);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new HostFileError(file, `${what}${describeType(st)}`, st.isDirectory() ? 'EISDIR' : 'ENOTREG');
    if (st.size > max) throw new HostFileError(file, `${what}is ${st.size} bytes, more than the limit of ${max}`, 'EFBIG');
    // read until EOF, but never more than max + 1 bytes (a file growing while read)
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const buf = Buffer.allocUnsafe(Math.min(64 * 1024, max + 1 - total));
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      chunks.push(buf.subarray(0, n));
      total += n;
      if (total > max) throw new HostFileError(file, `${what}is more than the limit of ${max} bytes`, 'EFBIG');
    }
    return Buffer.concat(chunks, total);
  } finally {
    closeSync(fd);
  }
}

/** readHostFile as UTF-8 text. */
export function readHostText(file: string, options: HostFileOptions = {}): string {
  return readHostFile(file, options).toString('utf8');
}
