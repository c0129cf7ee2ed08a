/**
 * Rewriting references to filesystem UUIDs and partition GUIDs in the text
 * files a Linux guest boots from: /etc/fstab, /etc/crypttab, GRUB's
 * configuration, BLS entries, the kernel command line, resume settings.
 * Pure text logic: every occurrence of an old value as a whole token is
 * replaced by its new value, in the same letter case; nothing else changes.
 *
 * A whole token: not preceded by a letter, digit or `_`, not followed by a
 * letter, digit, `_` or `-`. A `-` before it is allowed, as in GRUB's menu
 * entry ids (gnulinux-simple-UUID) and dracut's rd.luks.uuid=luks-UUID.
 */


export type IdMap = ReadonlyMap<string, string>;

/**
 * Guest files that name filesystems or partitions by UUID, as globs over one
 * directory level (`*` matches within a name). Read when they are regular
 * files; a symlink (/etc/grub2.cfg -> ../boot/grub2/grub.cfg) is rewritten
 * through its target's own entry.
 */
export const REFERENCE_FILES: readonly string[] = [
  '/etc/fstab',
  '/etc/crypttab',
  '/etc/default/grub',
  '/etc/default/grub.d/*.cfg',
  '/boot/grub/grub.cfg',
  '/boot/grub2/grub.cfg',
  '/boot/grub2/grubenv',
  '/boot/efi/EFI/*/grub.cfg',
  '/boot/loader/entries/*.conf',
  '/boot/efi/loader/entries/*.conf',
  '/etc/kernel/cmdline',
  '/etc/initramfs-tools/conf.d/resume',
  '/etc/dracut.conf.d/*.conf',
  '/etc/uswsusp.conf',
];

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The new value in the letter case of the occurrence it replaces. */
function inCaseOf(occurrence: string, value: string): string {
  const letters = occurrence.replace(/[^A-Za-z]/g, '');
  if (letters && letters === letters.toUpperCase()) return value.toUpperCase();
  if (letters && letters === letters.toLowerCase()) return value.toLowerCase();
  return value;
}

/**
 * `text` with every whole-token occurrence of a key of `ids` (any letter
 * case) replaced by its value. Keys must be non-empty; a key equal to its
 * value is left alone.
 */
export function rewriteReferences(text: string, ids: IdMap): { text: string; count: number } {
  const byLower = new Map<string, string>();
  for (const [from, to] of ids) if (from && from.toLowerCase() !== to.toLowerCase()) byLower.set(from.toLowerCase(), to);
  if (!byLower.size) return { text, count: 0 };
  // longest first: a key that is a prefix of another never wins over it
  const keys = [...byLower.keys()].sort((a, b) => b.length - a.length).map(escape);
  const re = new RegExp(`(?<![0-9A-Za-z_])(?:${keys.join('|')})(?![0-9A-Za-z_-])`, 'gi');
  let count = 0;
  const out = text.replace(re, (m) => {
    count++;
    return inCaseOf(m, byLower.get(m.toLowerCase())!);
  });
  return { text: out, count };
}

/** Whether `text` still names any key of `ids` as a whole token (verification of a rewrite). */
export function mentionsAny(text: string, ids: Iterable<string>): boolean {
  for (const id of ids) {
    if (!id) continue;
    const re = new RegExp(`(?<![0-9A-Za-z_])${escape(id)}(?![0-9A-Za-z_-])`, 'i');
    if (re.test(text)) return true;
  }
  return false;
}

/** Whether `name` (one path component) matches `pattern` with `*` wildcards. */
export function matchComponent(pattern: string, name: string): boolean {
  const re = new RegExp('^' + pattern.split('*').map(escape).join('[^/]*') + '$');
  return re.test(name) && !name.startsWith('.');
}

