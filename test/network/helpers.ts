/** Shared test data for the network module: distros, golden variants, case loading. */
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { detectDistro } from '../../src/distro/detect.js';
import { type Distro } from '../../src/core/distro.js';
import { interpret } from '../../src/network/interpret.js';
import { renderWith } from '../../src/network/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
/** Repo root: dist/test/network -> ../../.. */
export const ROOT = path.resolve(here, '..', '..', '..');
export const CASES_DIR = path.join(ROOT, 'fixtures', 'network', 'cases');

export const DISTROS = {
  ubuntu: detectDistro('ID=ubuntu\nID_LIKE=debian\nVERSION_ID="22.04"\nPRETTY_NAME="Ubuntu 22.04 LTS"\n'),
  debian: detectDistro('ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n'),
  arch: detectDistro('ID=arch\nPRETTY_NAME="Arch Linux"\n'),
  rocky9: detectDistro('ID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.3"\nPRETTY_NAME="Rocky Linux 9.3"\n'),
  centos7: detectDistro('ID="centos"\nID_LIKE="rhel fedora"\nVERSION_ID="7"\nPRETTY_NAME="CentOS Linux 7 (Core)"\n'),
  sles15: detectDistro('ID="sles"\nID_LIKE="suse"\nVERSION_ID="15.5"\nPRETTY_NAME="SUSE Linux Enterprise Server 15 SP5"\n'),
  alpine: detectDistro('ID=alpine\nVERSION_ID=3.19.1\nPRETTY_NAME="Alpine Linux v3.19"\n'),
  unknown: detectDistro('ID=plan9\nPRETTY_NAME="Plan 9"\n'),
} satisfies Record<string, Distro>;

/** Golden variants: directory name under expected/ -> renderer + the distro it renders for. */
export const VARIANTS: readonly { dir: string; renderer: string; distro: Distro }[] = [
  { dir: 'netplan', renderer: 'netplan', distro: DISTROS.ubuntu },
  { dir: 'networkd', renderer: 'networkd', distro: DISTROS.arch },
  { dir: 'network-manager', renderer: 'network-manager', distro: DISTROS.rocky9 },
  { dir: 'ifcfg-rhel', renderer: 'ifcfg', distro: DISTROS.centos7 },
  { dir: 'ifcfg-suse', renderer: 'ifcfg', distro: DISTROS.sles15 },
  { dir: 'eni', renderer: 'eni', distro: DISTROS.debian },
  { dir: 'eni-alpine', renderer: 'eni', distro: DISTROS.alpine },
];

export function caseNames(): string[] {
  return readdirSync(CASES_DIR).filter((n) => existsSync(path.join(CASES_DIR, n, 'input.yaml'))).sort();
}

export function loadCase(name: string): unknown {
  return parse(readFileSync(path.join(CASES_DIR, name, 'input.yaml'), 'utf8'));
}

/** Rendered tree (guest path -> text) as it would land on a fresh guest: edits applied to absent files. */
export function renderTree(config: unknown, renderer: string, distro: Distro): Map<string, { text: string; mode: number }> {
  const out = new Map<string, { text: string; mode: number }>();
  for (const f of renderWith(renderer, interpret(config), distro)) {
    if (f.kind === 'file') out.set(f.path, { text: f.content, mode: f.mode });
    else {
      const text = f.apply(out.get(f.path)?.text ?? null);
      if (text !== null) out.set(f.path, { text, mode: f.mode });
    }
  }
  return out;
}
