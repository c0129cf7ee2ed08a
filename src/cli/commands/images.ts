import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { sha256File } from '../../image/checksum.js';
import { capture } from '../../image/capture.js';
import { takeKeyFromEnv } from '../../image/decrypt.js';
import { defaultLibraryDir, findImage, imagePath, readLibrary } from '../../image/library.js';
import { parseTarget } from '../../fleet/targets.js';
import { checkSeal, type SealFinding } from '../../fleet/seal-check.js';
import { readHostSideGuest } from '../../fleet/host-read.js';
import { backendFor } from '../../fleet/open.js';
import { ExitCode, GhostprepError } from '../../util/errors.js';
import { Logger, out, type GlobalOptions } from '../common.js';

type Run = (fn: (g: GlobalOptions) => Promise<number>) => Promise<void>;

export function register(program: Command, run: Run): void {
  program.command('capture')
    .description('turn a sealed master image into a library image (zstd qcow2, or LUKS-encrypted) with its checksum')
    .requiredOption('-t, --target <image>', 'the sealed master image')
    .requiredOption('--name <name>', 'name in the library')
    .option('--library <dir>', 'image library (default $GHOSTPREP_LIBRARY or ./images)', defaultLibraryDir())
    .option('--compress <algo>', 'zstd | zlib | none', 'zstd')
    .option('--encrypt-key-file <file>', 'encrypt at rest (qcow2 LUKS) with the key in this file')
    .option('--encrypt-key-env <var>', 'encrypt with the key in this environment variable')
    .option('--notes <text>', 'free text for the catalog')
    .option('--force', 'capture an unsealed master, or replace an image of the same name')
    .option('--no-seal-check', 'skip the seal check (the catalog then records the image as not sealed)')
    .option('--no-host-read', 'run the seal check in an appliance even when the master can be read host-side')
    .addHelpText('after', `
The master must be sealed (ghostprep seal): capture refuses otherwise and lists what still
identifies it, as ghostprep seal --check does (--no-seal-check skips the check). A master whose
root is ext on a partition is checked host-side, without an appliance. Keys are read
from a file or a variable, never from the command line.
qcow2 cannot compress and encrypt at once: encrypted images are stored uncompressed.

Examples:
  ghostprep capture --target master.qcow2 --library images/ --name debian12-2026.11
  ghostprep capture --target master.qcow2 --name secure --encrypt-key-file /root/image.key`)
    .action((o: { target: string; name: string; library: string; compress: string; encryptKeyFile?: string; encryptKeyEnv?: string; notes?: string; force?: boolean; sealCheck: boolean; hostRead: boolean }) => run(async (g) => {
      if (!['zstd', 'zlib', 'none'].includes(o.compress)) throw new GhostprepError(`--compress ${o.compress}: use zstd, zlib or none`);
      if (!existsSync(o.target)) throw new GhostprepError(`${o.target} not found`);
      const log = new Logger(g);
      // out of the environment before the appliance below starts, which would inherit it
      if (o.encryptKeyEnv) takeKeyFromEnv(o.encryptKeyEnv);
      const t = parseTarget(o.target);
      if (t.kind !== 'image') throw new GhostprepError('capture takes a disk image (seal a rootfs tree, then build an image from it)');
      let identifying: string[] = [];
      if (o.sealCheck) {
        let findings = o.hostRead ? (await readHostSideGuest(t, checkSeal, { windows: true }))?.value : undefined;
        if (!findings) {
          await (await backendFor('image')).forEachGuest([t], { readonly: true }, async (_t, guest) => {
            if (guest instanceof Error) throw guest;
            findings = await checkSeal(guest);
          });
        }
        identifying = (findings as SealFinding[]).map((f) => f.item === 'Windows image state' ? `Windows ${f.path}: ${f.reason}` : `${f.path} (${f.operation ?? `no seal op: ${f.reason}`})`);
      }
      if (identifying.length && !o.force) {
        throw new GhostprepError(`${o.target} is not sealed; still identifying:\n  ${identifying.join('\n  ')}\nrun: ghostprep seal --target ${o.target}   (or capture with --force)`);
      }
      let last = -1;
      const entry = await capture({
        source: o.target, library: o.library, name: o.name, compress: o.compress as 'zstd', notes: o.notes, force: o.force,
        sealed: o.sealCheck && identifying.length === 0,
        key: o.encryptKeyFile || o.encryptKeyEnv ? { file: o.encryptKeyFile, env: o.encryptKeyEnv } : undefined,
        onProgress: (f) => { const p = Math.floor(f * 10) * 10; if (p !== last) { last = p; log.progress(`capture: ${p}%`); } },
      });
      if (g.json) out(JSON.stringify(entry, null, 2));
      else out(`captured ${entry.name}: ${o.library}/${entry.file} sha256 ${entry.sha256}${entry.encrypted ? ' (encrypted)' : ` (${entry.compression})`}${entry.sealed ? '' : ' UNSEALED'}`);
      return ExitCode.ok;
    }));

  const images = program.command('images').description('the image library: list, show, verify');
  images.command('list')
    .description('list library images')
    .option('--library <dir>', 'image library', defaultLibraryDir())
    .addHelpText('after', '\nExample:\n  ghostprep images list --library images/')
    .action((o: { library: string }) => run(async () => {
      const g = program.opts<GlobalOptions>();
      const lib = readLibrary(o.library);
      if (g.json) out(JSON.stringify(lib.images, null, 2));
      else for (const e of lib.images) out(`${e.name.padEnd(24)} ${(e.virtualSize / 2 ** 30).toFixed(1).padStart(6)} GiB  ${e.encrypted ? 'encrypted' : e.compression.padEnd(9)}  ${e.sealed ? 'sealed  ' : 'UNSEALED'}  ${e.created.slice(0, 10)}  ${e.sha256.slice(0, 12)}`);
      return ExitCode.ok;
    }));
  images.command('show <name>')
    .description('show one image\'s catalog entry')
    .option('--library <dir>', 'image library', defaultLibraryDir())
    .addHelpText('after', '\nExample:\n  ghostprep images show debian12-2026.11')
    .action((name: string, o: { library: string }) => run(async () => {
      const g = program.opts<GlobalOptions>();
      const e = findImage(o.library, name);
      if (g.json) out(JSON.stringify({ ...e, path: imagePath(o.library, e) }, null, 2));
      else for (const [k, v] of Object.entries({ ...e, path: imagePath(o.library, e) })) out(`${k.padEnd(12)} ${v}`);
      return ExitCode.ok;
    }));
  images.command('verify [name]')
    .description('re-hash library images; exit 1 on any mismatch or missing file')
    .option('--library <dir>', 'image library', defaultLibraryDir())
    .addHelpText('after', '\nExamples:\n  ghostprep images verify\n  ghostprep images verify debian12-2026.11 --json')
    .action((name: string | undefined, o: { library: string }) => run(async () => {
      const g = program.opts<GlobalOptions>();
      const entries = name ? [findImage(o.library, name)] : readLibrary(o.library).images;
      const results = [];
      for (const e of entries) {
        const p = imagePath(o.library, e);
        if (!existsSync(p)) { results.push({ name: e.name, ok: false, problem: `missing file ${p}` }); continue; }
        const actual = await sha256File(p);
        results.push(actual === e.sha256 ? { name: e.name, ok: true, problem: null } : { name: e.name, ok: false, problem: `sha256 ${actual} != catalog ${e.sha256}` });
      }
      if (g.json) out(JSON.stringify(results, null, 2));
      else for (const r of results) out(`${r.name}: ${r.ok ? 'ok' : `FAILED: ${r.problem}`}`);
      return results.every((r) => r.ok) ? ExitCode.ok : ExitCode.error;
    }));
}
