import type { Command } from 'commander';
import { restore, verifyBase, type RestoreMode } from '../../image/restore.js';
import { resolveBase } from '../../image/base.js';
import { decryptCopy } from '../../image/capture.js';
import { addBaseOptions } from './fleet-options.js';
import { findImage, imagePath, parseLibraryRef } from '../../image/library.js';
import { existsSync } from 'node:fs';
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
      const name = parseLibraryRef(o.base);
      if (name && findImage(o.library, name).encrypted) {
        // an encrypted image restores to a clear standalone copy, checked first
        if (o.mode !== 'copy') throw new GhostprepError(`library image ${name} is encrypted: restore it with --mode copy (the clone is written decrypted)`);
        if (existsSync(o.to) && !o.force) throw new GhostprepError(`${o.to} exists (use --force to overwrite it)`);
        const entry = findImage(o.library, name);
        await verifyBase(imagePath(o.library, entry), entry.sha256);
        await decryptCopy(imagePath(o.library, entry), o.to, { file: o.keyFile, env: o.keyEnv });
        out(g.json ? JSON.stringify({ path: o.to, mode: 'copy', decrypted: true }) : `restored ${o.to} (decrypted copy of ${name})`);
        return 0;
      }
      const resolved = await resolveBase(o.base, { library: o.library });
      let last = -1;
      const result = await restore({
        base: resolved.path, to: o.to, mode: o.mode as RestoreMode, size: o.size, expectedSha256: o.sha256 ?? resolved.expectedSha256, force: o.force, yes: o.yes,
        onProgress: (p) => {
          const pct = Math.floor(p.fraction * 100);
          if (pct !== last && pct % 10 === 0) { last = pct; log.progress(`${p.stage}: ${pct}%`); }
        },
      });
      if (g.json) out(JSON.stringify(result, null, 2));
      else out(`restored ${result.path} (${result.mode}, ${(result.virtualSize / 2 ** 30).toFixed(1)} GiB${result.grown ? `, grown` : ''}) in ${(result.durationMs / 1000).toFixed(1)} s`);
      return 0;
    }));
}
