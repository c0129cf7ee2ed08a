/** Environment variable that carries --luks-key-file's files to the guestfs backend (luks.ts). */
export const LUKS_KEY_ENV = 'GHOSTPREP_LUKS_KEY_FILE';

/**
 * Upper bound of drives per appliance (in this module of its own, like
 * LUKS_KEY_ENV, so that the CLI can name it without loading the guestfs
 * backend and execa).
 *
 * A TCG launch costs ~22 s plus ~1.4 s of CPU per drive (measured 2026-11-29:
 * 24 s / 50 s / 114 s of CPU with 1 / 20 / 50 drives, qemu RSS 0.50 / 0.81 /
 * 1.33 GB), and each clone then costs ~1 s of device calls and file commands.
 * Bigger batches spread the fixed part over more clones: 40 clones in one
 * appliance of 40 took 181 s of CPU and 400 s wall against 193 s and 486 s for
 * two of 20 (load 8-9); 100 clones with --jobs 2 make 2 batches of 50 instead
 * of 6 of 17 (four launches fewer). Past 50 the launch share per clone is
 * under 0.5 s while a batch that fails to launch or dies takes more clones
 * with it. See docs/design/guestfs.md, "Drives per appliance".
 */
export const DEFAULT_DRIVES_PER_APPLIANCE = 50;
