/**
 * One line of an authorized_keys file, parsed as OpenSSH does (sshd(8),
 * AUTHORIZED_KEYS FILE FORMAT): optional comma-separated options (quoted
 * values may hold spaces and commas), a key type, the base64 key blob,
 * an optional comment. The blob must decode and must start with the same
 * type string as the line: a truncated or pasted-together key is caught
 * here, not by sshd on the clone at first login.
 *
 * Whatever is not a public key is refused with a reason that never quotes
 * the text: the usual mistake is a private key (`file:keys/id_ed25519`
 * without `.pub`), and its content must not reach a message.
 */

/** Key types sshd accepts in authorized_keys (plain and certificate forms). */
/** Largest key file read (validate and the authorized-keys operation): an authorized_keys file of a few thousand keys. */
export const KEY_FILE_MAX_BYTES = 1024 * 1024;

export const PUBLIC_KEY_TYPES: ReadonlySet<string> = new Set([
  'ssh-ed25519', 'ssh-rsa', 'ssh-dss',
  'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521',
  'sk-ssh-ed25519@openssh.com', 'sk-ecdsa-sha2-nistp256@openssh.com',
  'ssh-ed25519-cert-v01@openssh.com', 'ssh-rsa-cert-v01@openssh.com', 'ssh-dss-cert-v01@openssh.com',
  'ecdsa-sha2-nistp256-cert-v01@openssh.com', 'ecdsa-sha2-nistp384-cert-v01@openssh.com', 'ecdsa-sha2-nistp521-cert-v01@openssh.com',
  'sk-ssh-ed25519-cert-v01@openssh.com', 'sk-ecdsa-sha2-nistp256-cert-v01@openssh.com',
]);

export interface PublicKey {
  readonly options?: string;
  readonly type: string;
  readonly blob: string;
  readonly comment?: string;
}

export type KeyParse = { readonly ok: true; readonly key: PublicKey } | { readonly ok: false; readonly reason: string };

const fail = (reason: string): KeyParse => ({ ok: false, reason });

/**
 * Why text is private key material, or undefined. Checked on the whole text
 * (a file) and on each line: PEM/OpenSSH/PuTTY headers and the body lines of
 * a PuTTY file.
 */
export function privateKeyKind(text: string): string | undefined {
  if (/-----BEGIN [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----/.test(text) || /PRIVATE KEY-----/.test(text)) return 'a private key (PEM/OpenSSH format)';
  if (/^\s*PuTTY-User-Key-File-\d+:/m.test(text) || /^\s*Private-(Lines|MAC|Hash):/m.test(text)) return 'a PuTTY private key file (.ppk)';
  if (/^\s*-----BEGIN /m.test(text) || /^\s*-----END /m.test(text)) return 'a PEM block, not an OpenSSH public key';
  if (/^\s*---- BEGIN SSH2 /m.test(text)) return 'an RFC 4716 (SSH2) key; convert it with ssh-keygen -i -f FILE';
  return undefined;
}

/** End of the options field: the first unquoted blank. */
function optionsEnd(line: string): number {
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === '\\' && quoted && i + 1 < line.length) { i++; continue; }
    if (c === '"') quoted = !quoted;
    else if (!quoted && (c === ' ' || c === '\t')) return i;
  }
  return quoted ? -1 : line.length;
}

/** A blob as the SSH wire strings it is made of (RFC 4251 string/mpint), or undefined when it does not split exactly. */
function wireStrings(blob: Buffer): Buffer[] | undefined {
  const out: Buffer[] = [];
  for (let at = 0; at < blob.length;) {
    if (blob.length - at < 4) return undefined;
    const n = blob.readUInt32BE(at);
    if (n > blob.length - at - 4) return undefined;
    out.push(blob.subarray(at + 4, at + 4 + n));
    at += 4 + n;
  }
  return out;
}

/** How many wire strings the key of each plain type holds (type name included), and fixed sizes. */
const SHAPES: Record<string, { fields: number; check?: (f: Buffer[]) => boolean }> = {
  'ssh-ed25519': { fields: 2, check: (f) => f[1]!.length === 32 },
  'ssh-rsa': { fields: 3 },
  'ssh-dss': { fields: 5 },
  'ecdsa-sha2-nistp256': { fields: 3, check: (f) => f[1]!.toString('latin1') === 'nistp256' },
  'ecdsa-sha2-nistp384': { fields: 3, check: (f) => f[1]!.toString('latin1') === 'nistp384' },
  'ecdsa-sha2-nistp521': { fields: 3, check: (f) => f[1]!.toString('latin1') === 'nistp521' },
  'sk-ssh-ed25519@openssh.com': { fields: 3, check: (f) => f[1]!.length === 32 },
  'sk-ecdsa-sha2-nistp256@openssh.com': { fields: 4, check: (f) => f[1]!.toString('latin1') === 'nistp256' },
};

/** Why a decoded key blob is not a key of `type`, or undefined. */
function blobProblem(type: string, blob: Buffer): string | undefined {
  const fields = wireStrings(blob);
  if (!fields || !fields.length) return `the ${type} key data is truncated or damaged`;
  if (fields[0]!.toString('latin1') !== type) return `the line says ${type} but its key data is of another type (a mix of two keys?)`;
  const shape = SHAPES[type];
  if (shape ? fields.length !== shape.fields || (shape.check && !shape.check(fields)) : fields.length < 2) return `the ${type} key data is truncated or damaged`;
  return undefined;
}

/** Parse one authorized_keys line (no line break). The reason of a failure never contains the text. */
export function parseAuthorizedKey(line: string): KeyParse {
  const privateKind = privateKeyKind(line);
  if (privateKind) return fail(`is ${privateKind}; authorized keys must be public keys (the .pub file)`);
  if (/[\0-\x08\x0a-\x1f\x7f]/.test(line)) return fail('contains a line break or control character; give one public key per entry');
  const text = line.trim();
  if (!text) return fail('is empty');
  let rest = text;
  let options: string | undefined;
  const first = text.split(/[ \t]/, 1)[0]!;
  if (!PUBLIC_KEY_TYPES.has(first)) {
    const end = optionsEnd(text);
    if (end < 0) return fail('is not an SSH public key (an unterminated quote in the options)');
    options = text.slice(0, end);
    rest = text.slice(end).trimStart();
  }
  const [type, blob, ...comment] = rest.split(/[ \t]+/);
  if (!type || !PUBLIC_KEY_TYPES.has(type)) {
    return fail(`is not an SSH public key (expected "[options] TYPE BASE64 [comment]" with TYPE one of ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256/384/521, sk-…@openssh.com)`);
  }
  if (!blob) return fail(`is not an SSH public key: the ${type} key has no base64 key data`);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(blob) || blob.length % 4 !== 0) return fail(`is not an SSH public key: the ${type} key data is not valid base64 (truncated or mistyped?)`);
  const problem = blobProblem(type, Buffer.from(blob, 'base64'));
  if (problem) return fail(`is not an SSH public key: ${problem}`);
  return { ok: true, key: { ...(options !== undefined && { options }), type, blob, ...(comment.length && { comment: comment.join(' ') }) } };
}

/** A problem of one line of a key file, with its 1-based line number. */
export interface KeyFileProblem { readonly line: number; readonly reason: string }

/**
 * Every line of an authorized_keys-style file (blank lines and # comments
 * skipped) parsed; the first problem, or undefined. A private key file is
 * reported once for the whole file.
 */
export function checkKeyFile(text: string): KeyFileProblem | undefined {
  const kind = privateKeyKind(text);
  const lines = text.split('\n');
  if (kind) {
    const at = lines.findIndex((l) => privateKeyKind(l)) + 1 || 1;
    return { line: at, reason: `is ${kind}; authorized keys must be public keys (the .pub file)` };
  }
  let any = false;
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!.replace(/\r$/, '').trim();
    if (!l || l.startsWith('#')) continue;
    any = true;
    const r = parseAuthorizedKey(l);
    if (!r.ok) return { line: i + 1, reason: r.reason };
  }
  return any ? undefined : { line: 1, reason: 'holds no key' };
}

/** The keys of a key file (blank lines and comments skipped), each checked; throws a message without the content. */
export function keysOfFile(text: string, describe: string): string[] {
  const problem = checkKeyFile(text);
  if (problem) throw new Error(`${describe}, line ${problem.line}, ${problem.reason}`);
  return text.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
}
