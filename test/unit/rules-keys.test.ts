/**
 * Authorized keys are OpenSSH public keys, and nothing else gets through:
 * generated keys of every plain type parse; private keys (PEM, PKCS#8,
 * OpenSSH, PuTTY), damaged blobs and mixed-up types are refused with a
 * reason that never quotes the text.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { checkKeyFile, keysOfFile, parseAuthorizedKey, PUBLIC_KEY_TYPES } from '../../src/identity/authorized-keys.js';
import { KEY_FILE_MAX_BYTES } from '../../src/identity/authorized-keys.js';
import { keyEntryProblem } from '../../src/fleet/rules-keys.js';
import { MemoryGuest } from '../../src/backends/memory.js';
import { authorizedKeysOperation } from '../../src/operations/customize/authorized-keys.js';
import type { OperationContext } from '../../src/core/operation.js';

const wire = (...parts: Buffer[]): Buffer => Buffer.concat(parts.flatMap((p) => { const n = Buffer.alloc(4); n.writeUInt32BE(p.length); return [n, p]; }));
const str = (s: string) => Buffer.from(s, 'latin1');

/** A key blob of the given plain type with random key material. */
const blobOf = (type: string, bytes: Uint8Array): Buffer => {
  const b = Buffer.from(bytes);
  switch (type) {
    case 'ssh-ed25519': return wire(str(type), b.subarray(0, 32));
    case 'ssh-rsa': return wire(str(type), b.subarray(0, 3), b);
    case 'ssh-dss': return wire(str(type), b, b.subarray(0, 20), b, b);
    case 'sk-ssh-ed25519@openssh.com': return wire(str(type), b.subarray(0, 32), str('ssh:'));
    case 'sk-ecdsa-sha2-nistp256@openssh.com': return wire(str(type), str('nistp256'), b, str('ssh:'));
    default: return wire(str(type), str(type.slice('ecdsa-sha2-'.length)), b);
  }
};
const PLAIN = ['ssh-ed25519', 'ssh-rsa', 'ssh-dss', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'sk-ssh-ed25519@openssh.com', 'sk-ecdsa-sha2-nistp256@openssh.com'];

const keyLine = fc.record({
  type: fc.constantFrom(...PLAIN),
  bytes: fc.uint8Array({ minLength: 32, maxLength: 80 }),
  options: fc.option(fc.constantFrom('no-pty', 'from="10.0.0.0/8,192.168.1.*"', 'command="echo hello, world",no-port-forwarding', 'restrict'), { nil: undefined }),
  comment: fc.option(fc.stringMatching(/^[A-Za-z0-9@._ -]{1,30}$/).filter((c) => c.trim() !== ''), { nil: undefined }),
});

/** Whether a reason quotes some stretch of the text (12 characters is no accident). */
function quotes(reason: string, text: string): boolean {
  for (let i = 0; i + 12 <= text.length; i++) if (reason.includes(text.slice(i, i + 12))) return true;
  return false;
}

const privateKeys = (): string[] => {
  const ed = generateKeyPairSync('ed25519');
  const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return [
    ed.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    rsa.privateKey.export({ type: 'pkcs1', format: 'pem' }) as string,
    ec.privateKey.export({ type: 'sec1', format: 'pem' }) as string,
    `-----BEGIN OPENSSH PRIVATE KEY-----\n${Buffer.from('openssh-key-v1\0' + 'x'.repeat(120)).toString('base64').match(/.{1,70}/g)!.join('\n')}\n-----END OPENSSH PRIVATE KEY-----\n`,
    `PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: k\nPublic-Lines: 1\nAAAAC3NzaC1lZDI1NTE5AAAAIEwq1bhOmRG6CDIGM8nxhTzXxOSqMGsnLY0VoTzOKPBe\nPrivate-Lines: 1\n${Buffer.alloc(48, 7).toString('base64')}\nPrivate-MAC: ${'cd'.repeat(32)}\n`,
  ];
};

describe('authorized keys are parsed as OpenSSH public keys', () => {
  it('accepts every generated key of every plain type, with or without options and comment', () => {
    fc.assert(fc.property(keyLine, ({ type, bytes, options, comment }) => {
      const blob = blobOf(type, bytes).toString('base64');
      const line = [options, type, blob, comment].filter((x) => x !== undefined).join(' ');
      const r = parseAuthorizedKey(line);
      expect(r, line).to.deep.include({ ok: true });
      if (r.ok) expect(r.key).to.include({ type, blob });
    }));
  });

  it('refuses a blob under another type name, a cut blob and one with bytes added', () => {
    fc.assert(fc.property(keyLine, fc.constantFrom(...PLAIN), fc.nat(), ({ type, bytes }, other, cut) => {
      const blob = blobOf(type, bytes);
      if (other !== type) expect(parseAuthorizedKey(`${other} ${blob.toString('base64')}`).ok).to.equal(false);
      const keep = 4 * (cut % Math.floor(blob.toString('base64').length / 4));
      const truncated = blob.toString('base64').slice(0, keep);
      if (truncated.length) expect(parseAuthorizedKey(`${type} ${truncated}`).ok, `${type} ${truncated}`).to.equal(false);
      expect(parseAuthorizedKey(`${type} ${Buffer.concat([blob, Buffer.from([1, 2, 3])]).toString('base64')}`).ok).to.equal(false);
    }));
  });

  it('refuses private keys of every format, whole or line by line, without quoting them', () => {
    for (const pem of privateKeys()) {
      const whole = checkKeyFile(pem);
      expect(whole?.reason, pem.slice(0, 40)).to.match(/private key/);
      expect(quotes(whole!.reason, pem)).to.equal(false);
      const inline = parseAuthorizedKey(pem.replace(/\n/g, ' '));
      expect(inline.ok).to.equal(false);
      if (!inline.ok) expect(quotes(inline.reason, pem)).to.equal(false);
      for (const line of pem.split('\n').filter(Boolean)) {
        const r = parseAuthorizedKey(line);
        expect(r.ok, line).to.equal(false);
        if (!r.ok) expect(quotes(r.reason, line), r.reason).to.equal(false);
      }
      expect(() => keysOfFile(pem, 'key file k')).to.throw(/private key/).and.satisfy((e: Error) => !quotes(e.message, pem));
    }
  });

  it('never quotes what it refuses, whatever the text', () => {
    fc.assert(fc.property(fc.string({ maxLength: 200 }), fc.base64String({ minLength: 16, maxLength: 200 }), (junk, b64) => {
      for (const text of [junk, b64, `${junk} ${b64}`, `ssh-ed25519 ${b64} ${junk}`]) {
        const r = parseAuthorizedKey(text);
        if (!r.ok) expect(quotes(r.reason, text.replace(/ssh-ed25519/g, '')), r.reason).to.equal(false);
      }
    }));
  });

  it('knows the certificate types and refuses a line with a line break', () => {
    expect(PUBLIC_KEY_TYPES.has('ssh-ed25519-cert-v01@openssh.com')).to.equal(true);
    const good = `ssh-ed25519 ${blobOf('ssh-ed25519', new Uint8Array(32)).toString('base64')}`;
    expect(parseAuthorizedKey(good).ok).to.equal(true);
    expect(parseAuthorizedKey(`${good}\nssh-ed25519 AAAA`).ok).to.equal(false);
  });

  it('reads file: keys through the bounded host reader: a private key file, a directory, a FIFO, a file over the cap and a missing file', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ghostprep-keys-'));
    try {
      const [pem] = privateKeys();
      writeFileSync(path.join(dir, 'id_ed25519'), pem!);
      writeFileSync(path.join(dir, 'id_ed25519.pub'), `ssh-ed25519 ${blobOf('ssh-ed25519', new Uint8Array(32).fill(9)).toString('base64')} me@host\n`);
      const problem = keyEntryProblem('file:id_ed25519', dir)!;
      expect(problem).to.match(/^key file "id_ed25519", line 1, is a private key/);
      expect(quotes(problem, pem!)).to.equal(false);
      expect(keyEntryProblem('file:id_ed25519.pub', dir)).to.equal(undefined);
      expect(keyEntryProblem('file:.', dir)).to.match(/is a directory/);
      expect(keyEntryProblem('file:missing.pub', dir)).to.equal(undefined); // reported as "not found" elsewhere
      execFileSync('mkfifo', [path.join(dir, 'fifo')]);
      expect(keyEntryProblem('file:fifo', dir)).to.equal('key file "fifo" is a FIFO (named pipe), not a regular file');
      writeFileSync(path.join(dir, 'huge.pub'), Buffer.alloc(KEY_FILE_MAX_BYTES + 1, 0x41));
      expect(keyEntryProblem('file:huge.pub', dir)).to.match(/more than the limit/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the authorized-keys operation refuses a private key itself (plan or apply without validate), unquoted', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ghostprep-keys-op-'));
    try {
      const [pem] = privateKeys();
      writeFileSync(path.join(dir, 'id_ed25519'), pem!);
      const guest = new MemoryGuest({ '/etc/passwd': 'root:x:0:0:root:/root:/bin/sh\n', '/etc/group': 'root:x:0:\n' });
      const plan = (keys: string[]) => authorizedKeysOperation.plan({
        guest,
        profile: { ssh: { authorizedKeys: { root: keys } } },
        machine: { prepared: { traced: { origins: new Map([['', { source: { file: path.join(dir, 'profile.yaml') }, pointer: '' }]]) } } },
      } as unknown as OperationContext).then(() => undefined, (e: Error) => e);
      for (const keys of [['file:id_ed25519'], [pem!.replace(/\n/g, ' ')], ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5']]) {
        const err = await plan(keys);
        expect(err?.message, keys[0]).to.match(/private key|not an SSH public key/);
        expect(quotes(err!.message, pem!)).to.equal(false);
      }
      const ok = `ssh-ed25519 ${blobOf('ssh-ed25519', new Uint8Array(32).fill(3)).toString('base64')} me@host`;
      expect(await plan([ok])).to.equal(undefined);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
