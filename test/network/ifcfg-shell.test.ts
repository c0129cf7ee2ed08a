/**
 * ifcfg files cannot be booted here (no RHEL initscripts or SUSE wicked from Debian
 * packages), so their golden files get a parser check instead: initscripts and wicked's
 * ifcfg reader source them as shell, so bash must read every golden ifcfg file without a
 * syntax error and see exactly the KEY=value pairs the file spells (no word splitting,
 * expansion or quoting surprise), one assignment a line.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { REPO } from '../helpers/rootfs.js';

const CASES = path.join(REPO, 'fixtures/network/cases');

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = path.join(dir, n);
    return statSync(p).isDirectory() ? files(p) : [p];
  });
}

/** The file's assignments as a reader that does not run a shell sees them. */
function assignments(text: string, file: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(?:'([^']*)'|"([^"$`\\]*)"|([^\s'"$`\\;&|<>()]*))$/.exec(line);
    expect(m, `${file}: not a plain KEY=value line: ${line}`).to.not.equal(null);
    out.set(m![1]!, m![2] ?? m![3] ?? m![4] ?? '');
  }
  return out;
}

const ifcfgFiles = readdirSync(CASES).flatMap((c) => ['ifcfg-rhel', 'ifcfg-suse'].flatMap((v) => {
  const dir = path.join(CASES, c, 'expected', v);
  try { return files(dir).filter((f) => /\/ifcfg-[^/]+$/.test(f)); } catch { return []; }
}));

describe('ifcfg golden files read as shell', () => {
  it('has golden ifcfg files for RHEL and SUSE', () => {
    expect(ifcfgFiles.some((f) => f.includes('/ifcfg-rhel/'))).to.equal(true);
    expect(ifcfgFiles.some((f) => f.includes('/ifcfg-suse/'))).to.equal(true);
  });

  for (const file of ifcfgFiles) {
    it(path.relative(CASES, file), () => {
      const text = readFileSync(file, 'utf8');
      const expected = assignments(text, file);
      expect(expected.size, 'assignments').to.be.greaterThan(0);
      // what bash sees after sourcing the file in an empty environment, as NUL-separated KEY=value
      const keys = [...expected.keys()];
      const r = spawnSync('bash', ['--norc', '--noprofile', '-c', 'set -eu; . "$1"; shift; for k; do printf "%s=%s\\0" "$k" "${!k}"; done', '_', file, ...keys], { encoding: 'utf8', env: {} });
      expect(r.stderr, 'bash stderr').to.equal('');
      expect(r.status, 'bash exit status').to.equal(0);
      const seen = new Map(r.stdout.split('\0').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)] as const));
      expect(seen).to.deep.equal(expected);
    });
  }
});
