/**
 * Guest volumes encrypted with LUKS (a root on LUKS, or LVM on LUKS as the
 * Debian and Ubuntu installers make it): opened inside the appliance with
 * passphrases from key files, so inspection can find the root behind them.
 *
 * Key files hold the passphrase on their first line (trailing newline
 * dropped), as libguestfs's own `--key DEVICE:file:FILE` reads them. The
 * passphrase reaches guestfish on its stdin (session.commandWithKey), never
 * on a command line, in an error or in a trace.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { GhostprepError, GuestError } from '../../util/errors.js';
import { driveDevice, GuestfsError, type GuestfsSession } from './session.js';
import { LUKS_KEY_ENV } from './defaults.js';

/** Where the CLI's `--luks-key-file` (and users' scripts) put key file paths: a `:`-separated list. */
export { LUKS_KEY_ENV };

export function luksKeyFilesFromEnv(env: NodeJS.ProcessEnv = process.env): string[] {
  return (env[LUKS_KEY_ENV] ?? '').split(path.delimiter).filter(Boolean);
}

/** Passphrases of these key files, in order. Errors name the file, never its content. */
export async function readLuksKeys(files: readonly string[]): Promise<string[]> {
  const keys: string[] = [];
  for (const f of files) {
    let text: string;
    try {
      text = await fs.readFile(f, 'utf8');
    } catch (err) {
      throw new GhostprepError(`LUKS key file ${f}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : (err as Error).message}`, { cause: err });
    }
    const first = text.split('\n')[0]!.replace(/\r$/, '');
    if (!first) throw new GhostprepError(`LUKS key file ${f}: the first line (the passphrase) is empty`);
    if (first.includes('\0')) throw new GhostprepError(`LUKS key file ${f}: the passphrase contains a NUL byte, which libguestfs cannot pass`);
    keys.push(first);
  }
  return keys;
}

const keyCache = new Map<string, Promise<string[]>>();

/** Passphrases for one open call: its key files, else those of $GHOSTPREP_LUKS_KEY_FILE; read once per list. */
export function luksKeysFor(files: readonly string[] | undefined): Promise<string[]> {
  const list = files ?? luksKeyFilesFromEnv();
  const id = list.join('\0');
  let p = keyCache.get(id);
  if (!p) keyCache.set(id, (p = readLuksKeys(list)));
  return p;
}

export interface OpenedLuks {
  /** The encrypted partition or LV, e.g. /dev/sda3. */
  readonly source: string;
  /** Where its clear contents appear, e.g. /dev/mapper/gpluks_0_3. */
  readonly mapper: string;
}

/** Mapper name unique in the appliance: drive index and the source's trailing number. */
export function mapperName(index: number, source: string): string {
  const tail = /(\d+)$/.exec(source)?.[1] ?? '0';
  return `gpluks_${index}_${tail}`;
}

/**
 * Open one LUKS volume with the first key that fits. Throws a GhostprepError
 * naming the image and device (never a key) when none does; that machine
 * fails alone.
 */
export async function openLuks(session: GuestfsSession, index: number, source: string, keys: readonly string[], image: string): Promise<OpenedLuks> {
  const name = mapperName(index, source);
  if (!keys.length) {
    throw new GuestError(`${image}: ${source} (on ${driveDevice(index)}) is encrypted with LUKS: give its passphrase with --luks-key-file FILE (or ${LUKS_KEY_ENV}=FILE)`, image);
  }
  let lastReason = '';
  for (const key of keys) {
    try {
      // The KDF (argon2 for LUKS2) is slow under TCG: allow minutes, not the default.
      await session.commandWithKey('cryptsetup-open', [source, name], key, { timeoutMs: 10 * 60_000 });
      return { source, mapper: `/dev/mapper/${name}` };
    } catch (err) {
      if (!(err instanceof GuestfsError) || !session.alive) throw err;
      lastReason = err.stderr;
    }
  }
  const why = /No key available/i.test(lastReason) ? 'wrong passphrase' : lastReason.replace(/^cryptsetup_open: /, '');
  throw new GuestError(`${image}: cannot open the LUKS volume ${source}: ${keys.length === 1 ? 'the key file given does not open it' : `none of the ${keys.length} key files given opens it`} (${why})`, image);
}

/** LVM inside a just-opened LUKS volume is not active yet: scan and activate it. */
export async function activateLvm(session: GuestfsSession): Promise<void> {
  try {
    await session.command('lvm-scan', [true]);
  } catch (err) {
    if (!(err instanceof GuestfsError) || !session.alive) throw err;
    await session.command('vg-activate-all', [true]); // libguestfs < 1.40 has no lvm-scan
  }
}

/** /etc/crypttab: mapper name → source spec (UUID=…, /dev/…). */
export function parseCrypttab(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) continue;
    const [name, source] = line.split(/\s+/);
    if (name && source) out.set(name, source);
  }
  return out;
}
