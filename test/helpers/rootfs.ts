/**
 * Fresh copies of the fixture root trees, with the modes and owners of
 * fixtures/rootfs/MANIFEST.tsv applied (git keeps neither).
 */
import { chmodSync, cpSync, lchownSync, mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { removedAtExit } from './temp.js';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const FIXTURES = path.join(REPO, 'fixtures');
export const ROOTFS_FIXTURES = ['debian12', 'ubuntu2204', 'rocky9', 'rocky8', 'fedora40', 'opensuse155', 'arch', 'alpine319'] as const;

function manifest(): Array<[string, number, number, number]> {
  return readFileSync(path.join(FIXTURES, 'rootfs/MANIFEST.tsv'), 'utf8').split('\n').slice(1).filter(Boolean)
    .map((l) => l.split('\t')).map(([p, m, u, g]) => [p!, parseInt(m!, 8), Number(u), Number(g)]);
}

/** Copy fixture `name` to `dest` (created) and apply its manifest entries. */
export function copyFixture(name: string, dest: string): string {
  cpSync(path.join(FIXTURES, 'rootfs', name), dest, { recursive: true, verbatimSymlinks: true });
  const asRoot = process.getuid?.() === 0;
  // deepest first, so that a 0550 /root does not stop us from fixing files inside it
  for (const [p, mode, uid, gid] of manifest().filter(([p]) => p.startsWith(name + '/')).sort((a, b) => b[0].length - a[0].length)) {
    const file = path.join(dest, p.slice(name.length + 1));
    if (asRoot) lchownSync(file, uid, gid);
    // without root, keep files readable to ourselves (0000 shadow would be unreadable)
    chmodSync(file, asRoot ? mode : mode | 0o600 | (mode & 0o111 ? 0o100 : 0) | (p.endsWith('/') ? 0o700 : 0));
  }
  return dest;
}

/** A new directory under the system's tmp, removed when the test process exits (temp.ts). */
export function tempDir(prefix = 'ghostprep-test-'): string {
  return removedAtExit(mkdtempSync(path.join(os.tmpdir(), prefix)));
}
