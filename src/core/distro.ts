/** The distribution of a guest, as detected from /etc/os-release (src/distro/detect.ts). */
/** `windows` is never read from os-release: src/windows/detect.ts reads the registry. */
export type Family = 'debian' | 'rhel' | 'suse' | 'arch' | 'alpine' | 'windows' | 'unknown';

export interface Distro {
  readonly id: string;
  readonly idLike: readonly string[];
  readonly versionId: string;
  readonly name: string;
  readonly family: Family;
  /** Major version as a number when VERSION_ID starts with one (rhel 6/8 rules). */
  readonly major: number | undefined;
}

