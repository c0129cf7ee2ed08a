/**
 * The secrets of a Windows answer file: account passwords, the domain join
 * provisioning blob, the product key. They never come from the profile's
 * text (a `password:` key there is refused): each is read from a host file
 * the profile names (a `{{machine.name}}` template or a `{name}` pattern,
 * relative to the profile that names it), through the bounded host-file
 * reader, or generated per machine into the state dir. Messages name the
 * file and the profile key, never the contents.
 *
 * Passwords are written as Windows System Image Manager hides them:
 * `<Value>` = base64 of the UTF-16LE bytes of password + element name
 * ("Password" for LocalAccount and AutoLogon, "AdministratorPassword"),
 * with `<PlainText>false</PlainText>`. That is an encoding, not encryption:
 * the unattend.xml holding it is a secret in the plan either way.
 */
import { randomInt } from 'node:crypto';
import path from 'node:path';
import { originOf } from '../profile/profile-merge.js';
import type { Traced } from '../core/machine.js';
import { GhostprepError } from '../util/errors.js';
import { HostFileError, readHostFile } from '../util/host-file.js';

/** What a secret file's name is resolved against: the machine's name and where its profile keys were written (a RenderedMachine). */
export interface SecretOwner {
  readonly prepared: { readonly name: string; readonly traced: Pick<Traced<unknown>, 'origins'> };
}

/** The element a password is encoded for: LocalAccount and AutoLogon use "Password". */
export type PasswordElement = 'Password' | 'AdministratorPassword';

/** `<Value>` of a hidden unattend password: base64(UTF-16LE(password + element name)). */
export function encodeUnattendPassword(password: string, element: PasswordElement): string {
  return Buffer.from(password + element, 'utf16le').toString('base64');
}

/** A password file or a product key file: a short text. */
export const SECRET_FILE_MAX_BYTES = 64 * 1024;
/** djoin /provision blobs are a few KiB of base64; certificates in them (/certtemplate) make them bigger. */
export const PROVISIONING_FILE_MAX_BYTES = 1024 * 1024;

/**
 * Text of a file written on Windows or Linux: UTF-16LE (with or without its
 * BOM: `djoin /savefile` writes UTF-16LE) or UTF-8 (BOM dropped), without the
 * trailing line break and NULs.
 */
export function decodeSecretText(bytes: Buffer): string {
  let text: string;
  if (bytes.length >= 2 && bytes[0] === 0xff && bytes[1] === 0xfe) text = bytes.subarray(2).toString('utf16le');
  else if (bytes.length >= 2 && bytes.length % 2 === 0 && bytes[1] === 0 && bytes[0] !== 0) text = bytes.toString('utf16le');
  else text = bytes.toString('utf8').replace(/^\uFEFF/, '');
  return text.replace(/[\r\n\0]+$/, '');
}

/** The host path of a secret file named at `pointer`: `{name}` is the machine name, relative paths from the naming profile. */
export function secretPath(r: SecretOwner, pointer: string, pattern: string): string {
  const file = pattern.replace(/\{name\}/g, r.prepared.name);
  const origin = originOf(r.prepared.traced.origins, pointer);
  return path.resolve(path.dirname(origin?.source.file ?? '.'), file);
}

/** The contents of the secret file named at `pointer` (decoded text); a clear error naming the file and the key otherwise. */
export function readSecretFile(r: SecretOwner, pointer: string, pattern: string, what: string, maxBytes = SECRET_FILE_MAX_BYTES): string {
  const file = secretPath(r, pointer, pattern);
  let text: string;
  try {
    text = decodeSecretText(readHostFile(file, { maxBytes, what }));
  } catch (err) {
    if (err instanceof HostFileError) throw new GhostprepError(`machine ${r.prepared.name}: windows${pointer.replace(/^\/windows/, '').replace(/\//g, '.')} "${pattern}": ${what} ${file}: ${err.reason}`, { cause: err });
    throw err;
  }
  if (!text) throw new GhostprepError(`machine ${r.prepared.name}: ${what} ${file} (${pointer}) is empty`);
  return text;
}

/**
 * The AccountData of a `djoin /provision` file: base64 text, whitespace
 * (line breaks of a copy and paste) removed. Anything else is refused: it
 * lands in XML and in the clone's domain trust.
 */
export function provisioningBlob(text: string, file: string): string {
  const blob = text.replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(blob) || blob.length % 4 !== 0 || blob.length < 64) {
    throw new GhostprepError(`${file} is not the output of djoin /provision (base64 account data expected, as written by djoin /provision /savefile)`);
  }
  return blob;
}

const LOWER = 'abcdefghijkmnopqrstuvwxyz';
const UPPER = 'ABCDEFGHJKLMNPQRSTUVWXYZ';
const DIGITS = '23456789';
const SYMBOLS = '#%+-.:=@_';

/**
 * A new password for a Windows account: 20 characters from the system
 * CSPRNG, at least one of each class Windows' complexity policy counts
 * (lower, upper, digit, symbol), none that needs escaping in XML or a shell.
 */
export function generateWindowsPassword(length = 20): string {
  const all = LOWER + UPPER + DIGITS + SYMBOLS;
  const chars = [LOWER, UPPER, DIGITS, SYMBOLS].map((set) => set[randomInt(set.length)]!);
  while (chars.length < length) chars.push(all[randomInt(all.length)]!);
  for (let i = chars.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [chars[i], chars[j]] = [chars[j]!, chars[i]!];
  }
  return chars.join('');
}

/** The state-dir file of a generated password (per machine): windows/password-NAME. */
export function passwordStateFile(account: string): string {
  const safe = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(account) ? account : 'x' + Buffer.from(account, 'utf8').toString('hex');
  return `windows/password-${safe}`;
}
