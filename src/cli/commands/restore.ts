import type { Command } from 'commander';
import { restore, restoreDecrypted, type RestoreMode, type RestoreProgress } from '../../image/restore.js';
import { resolveBase } from '../../image/base.js';
import { addBaseOptions } from './fleet-options.js';
import { findImage, imagePath, parseLibraryRef } from '../../image/library.js';
import { GhostprepError } from '../../util/errors.js';
import { Logger, out, type GlobalOptions } from '../common.js';

export function register(program: Command, run: (fn: (g: GlobalOptions) => Promise<number>) => Promise<void>): void {
  addBaseOptions(program.command('restore'), ' (restored as a decrypted copy)')
    .description('restore one clone from a base image (overlay, copy, or onto a block device)')
    .requiredOption('--to <path>', 'new clone file, or /dev/X with --mode device')
    .option('--mode <mode>', 'overlay | copy | device', 'overlay')
    .option('--size <size>', 'grow the disk, its last partition and filesystem (ext4, xfs, LVM root) to this size')
    .option('--force', 'overwrite an existing clone')
    .option('--yes', 'confirm writing a block device (--mode device)')
    .addHelpText('after', `
overlay: a qcow2 whose backing file is the base (explicit backing format), O(1) per clone.
copy:    qemu-img convert to a standalone sparse qcow2, with progress.
device:  write the image onto a block device; needs --yes.
The clone is written under a temporary name and renamed at the end: a failed restore leaves nothing.

Examples:
  ghostprep restore --base images/debian12.qcow2 --to clones/node01.qcow2
  ghostprep restore --base images/debian12.qcow2 --to big.qcow2 --mode copy --size 40G
  ghostprep restore --base images/debian12.qcow2 --to /dev/sdb --mode device --yes`)
    .action((o: { base: string; to: string; mode: string; size?: string; sha256?: string; force?: boolean; yes?: boolean; library: string; keyFile?: string; keyEnv?: string }) => run(async (g) => {
      if (!['overlay', 'copy', 'device'].includes(o.mode)) throw new GhostprepError(`--mode ${o.mode}: use overlay, copy or device`);
      const log = new Logger(g);
      let last = -1;
      const onProgress = (p: RestoreProgress) => {
        const pct = Math.floor(p.fraction * 100);
        if (pct !== last && pct % 10 === 0) { last = pct; log.progress(`${p.stage}: ${pct}%`); }
      };
      const name = parseLibraryRef(o.base);
      const entry = name ? findImage(o.library, name) : undefined;
      const common = { to: o.to, mode: o.mode as RestoreMode, size: o.size, force: o.force, yes: o.yes, onProgress };
      // an encrypted image restores to a clear standalone copy (see docs/images.md, "Encryption at rest");
      // --sha256 then checks the encrypted file, as the catalog's checksum does
      const result = entry?.encrypted
        ? await restoreDecrypted({ ...common, base: imagePath(o.library, entry), expectedSha256: o.sha256 ?? entry.sha256, key: { file: o.keyFile, env: o.keyEnv } })
        : await (async () => {
          const resolved = await resolveBase(o.base, { library: o.library });
          return restore({ ...common, base: resolved.path, expectedSha256: o.sha256 ?? resolved.expectedSha256 });
        })();
      if (g.json) out(JSON.stringify(entry?.encrypted ? { ...result, decrypted: true } : result, null, 2));
      else out(`restored ${result.path} (${result.mode}${entry?.encrypted ? `, decrypted copy of ${name}` : ''}, ${(result.virtualSize / 2 ** 30).toFixed(1)} GiB${result.grown ? `, grown` : ''}) in ${(result.durationMs / 1000).toFixed(1)} s`);
      return 0;
    }));
}
