/**
 * References to LVM volume groups in a guest's configuration, and their
 * rewriting when a clone's volume group is renamed (pure functions).
 *
 * A volume group VG with a logical volume LV is named in four ways:
 *
 *   /dev/VG/LV                 (fstab, crypttab, resume=, GRUB)
 *   /dev/mapper/VG-LV          device-mapper name: every `-` inside VG and LV is doubled
 *   dm-name-VG-LV              /dev/disk/by-id/, same escaping
 *   rd.lvm.vg=VG, rd.lvm.lv=VG/LV   dracut's kernel parameters (also rd_LVM_VG=, rd_LVM_LV=)
 *
 * Every form is matched by its shape, then decoded and looked up in the
 * rename map, in ONE pass: renames never chain (a -> b and b -> a swap).
 */

/** What LVM accepts in VG and LV names (lvm(8), "VALID NAMES"). */
export const LVM_NAME_RE = /^[A-Za-z0-9+_.][A-Za-z0-9+_.-]*$/;

/** Why `name` cannot be a volume group name, or undefined when it can. */
export function vgNameProblem(name: string): string | undefined {
  if (!name) return 'is empty';
  if (name.length > 127) return 'is longer than 127 characters';
  if (!LVM_NAME_RE.test(name)) return 'may hold only A-Z a-z 0-9 + _ . - and may not start with -';
  if (name === '.' || name === '..') return 'may not be . or ..';
  if (/^(snapshot|pvmove)$/.test(name)) return `"${name}" is reserved by LVM`;
  if (new RegExp(`^(?:${SYSTEM_DEV_DIRS})$`).test(name)) return `/dev/${name} is taken by the system`;
  return undefined;
}

/** Device-mapper form of a name: each `-` doubled. */
export function dmEscape(name: string): string {
  return name.replace(/-/g, '--');
}

/** `/dev/mapper/` name of VG/LV. */
export function mapperName(vg: string, lv: string): string {
  return `${dmEscape(vg)}-${dmEscape(lv)}`;
}

/** VG and LV of a device-mapper name of an LV (`vg--x-root` -> vg-x, root); undefined when it is none. */
export function parseMapperName(name: string): { vg: string; lv: string } | undefined {
  const m = /^((?:[^-]|--)+)-((?:[^-]|--)+)$/.exec(name);
  if (!m) return undefined;
  return { vg: m[1]!.replace(/--/g, '-'), lv: m[2]!.replace(/--/g, '-') };
}

const NAME = '[A-Za-z0-9+_.][A-Za-z0-9+_.-]*';
/** A reference starts where no path or word character precedes it. */
const START = '(?<![A-Za-z0-9_./-])';
/** Directories of /dev that are not volume groups. */
const SYSTEM_DEV_DIRS = 'disk|mapper|md|pts|shm|net|bus|block|char|input|dri|snd|cpu|fd|hugepages|mqueue|vfio|zvol|cdrom';
const PATTERN = new RegExp(
  [
    // 1: /dev/mapper/ or dm-name- prefix, 2: escaped VG (a single `-` ends it)
    `(${START}/dev/mapper/|(?<![A-Za-z0-9_.-])dm-name-)((?:[A-Za-z0-9+_.]|--)+)-(?!-)`,
    // 3: /dev/ 4: VG, then /
    `${START}(/dev/)(?!(?:${SYSTEM_DEV_DIRS})/)(${NAME})(?=/)`,
    // 5: rd.lvm.lv= / rd_LVM_LV=, 6: VG, then /
    `${START}(rd\\.lvm\\.lv=|rd_LVM_LV=)(${NAME})(?=/)`,
    // 7: rd.lvm.vg= / rd_LVM_VG=, 8: VG, then the end of the value
    `${START}(rd\\.lvm\\.vg=|rd_LVM_VG=)(${NAME})(?![A-Za-z0-9+_.-])`,
  ].join('|'),
  'g',
);

export interface VgReference {
  /** Offset of the VG name in the text. */
  readonly index: number;
  readonly vg: string;
  readonly form: 'mapper' | 'dev' | 'rd.lvm.lv' | 'rd.lvm.vg';
}

/** Every VG name referenced in `text`, in order. */
export function findVgReferences(text: string): VgReference[] {
  const out: VgReference[] = [];
  for (const m of text.matchAll(PATTERN)) {
    if (m[2] !== undefined) out.push({ index: m.index + m[1]!.length, vg: m[2].replace(/--/g, '-'), form: 'mapper' });
    else if (m[4] !== undefined) out.push({ index: m.index + m[3]!.length, vg: m[4], form: 'dev' });
    else if (m[6] !== undefined) out.push({ index: m.index + m[5]!.length, vg: m[6], form: 'rd.lvm.lv' });
    else if (m[8] !== undefined) out.push({ index: m.index + m[7]!.length, vg: m[8], form: 'rd.lvm.vg' });
  }
  return out;
}

/**
 * `text` with every reference to a VG of `renames` (old name -> new name)
 * pointing at the new name; the rest byte for byte.
 */
export function rewriteVgReferences(text: string, renames: ReadonlyMap<string, string>): string {
  if (!renames.size) return text;
  return text.replace(PATTERN, (all, mPrefix?: string, mVg?: string, dPrefix?: string, dVg?: string, lPrefix?: string, lVg?: string, vPrefix?: string, vVg?: string) => {
    if (mVg !== undefined) {
      const to = renames.get(mVg.replace(/--/g, '-'));
      return to === undefined ? all : `${mPrefix}${dmEscape(to)}-`;
    }
    if (dVg !== undefined) {
      const to = renames.get(dVg);
      return to === undefined ? all : `${dPrefix}${to}`;
    }
    if (lVg !== undefined) {
      const to = renames.get(lVg);
      return to === undefined ? all : `${lPrefix}${to}`;
    }
    const to = renames.get(vVg!);
    return to === undefined ? all : `${vPrefix}${to}`;
  });
}

/**
 * Guest files that may name a volume group: mounts, encrypted volumes, the
 * boot loader's kernel command line, the initramfs's configuration (resume
 * device, dracut's rd.lvm parameters). Directories: every regular file in them
 * whose name ends with one of `suffixes`.
 */
export const VG_REFERENCE_FILES: readonly string[] = [
  '/etc/fstab',
  '/etc/crypttab',
  '/etc/default/grub',
  '/boot/grub/grub.cfg',
  '/boot/grub2/grub.cfg',
  '/etc/kernel/cmdline',
  '/etc/initramfs-tools/conf.d/resume',
  '/etc/uswsusp.conf',
  '/etc/sysconfig/grub',
];
export const VG_REFERENCE_DIRS: ReadonlyArray<{ readonly dir: string; readonly suffixes: readonly string[] }> = [
  { dir: '/boot/loader/entries', suffixes: ['.conf'] },
  { dir: '/etc/dracut.conf.d', suffixes: ['.conf'] },
  { dir: '/etc/default/grub.d', suffixes: ['.cfg'] },
  { dir: '/etc/initramfs-tools/conf.d', suffixes: [''] },
];
