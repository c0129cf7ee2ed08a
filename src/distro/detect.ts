/**
 * Distro family detection from /etc/os-release, shared by every backend.
 * Families decide which identity files exist (docs/operations.md, "What gets written").
 */
import type { Distro, Family } from '../core/distro.js';

/** Parse the shell-like KEY=value syntax of os-release(5). */
export function parseOsRelease(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    const key = line.slice(0, eq);
    let value = line.slice(eq + 1);
    const q = value[0];
    if ((q === '"' || q === "'") && value.endsWith(q) && value.length >= 2) {
      value = value.slice(1, -1);
      if (q === '"') value = value.replace(/\\(["\\$`])/g, '$1');
    }
    out[key] = value;
  }
  return out;
}

const FAMILY_BY_ID: Record<string, Family> = {
  debian: 'debian', ubuntu: 'debian', raspbian: 'debian', linuxmint: 'debian', pop: 'debian',
  fedora: 'rhel', rhel: 'rhel', centos: 'rhel', rocky: 'rhel', almalinux: 'rhel', ol: 'rhel',
  amzn: 'rhel', 'centos-stream': 'rhel',
  suse: 'suse', sles: 'suse', opensuse: 'suse', 'opensuse-leap': 'suse', 'opensuse-tumbleweed': 'suse', sled: 'suse',
  arch: 'arch', manjaro: 'arch', endeavouros: 'arch',
  alpine: 'alpine',
};

export function familyOf(id: string, idLike: readonly string[]): Family {
  for (const candidate of [id, ...idLike]) {
    const fam = FAMILY_BY_ID[candidate.toLowerCase()];
    if (fam) return fam;
  }
  return 'unknown';
}

export function detectDistro(osRelease: string | undefined): Distro {
  const kv = parseOsRelease(osRelease ?? '');
  const id = (kv.ID ?? 'unknown').toLowerCase();
  const idLike = (kv.ID_LIKE ?? '').split(/\s+/).filter(Boolean).map((s) => s.toLowerCase());
  const versionId = kv.VERSION_ID ?? '';
  const majorMatch = /^(\d+)/.exec(versionId);
  return {
    id,
    idLike,
    versionId,
    name: kv.PRETTY_NAME ?? kv.NAME ?? id,
    family: familyOf(id, idLike),
    major: majorMatch ? Number(majorMatch[1]) : undefined,
  };
}
