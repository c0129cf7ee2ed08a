/**
 * qcow2 layers over a cached test image, made once and kept in the test image
 * cache (test/helpers/images.ts: .cache/test-images/, or
 * GHOSTPREP_TEST_IMAGES) under a hash of the base image's file name (itself
 * named by a hash of its inputs) and of a recipe: a test that needs images
 * prepared in an appliance (hostile trees, say) pays that appliance once per
 * cache, not once per run.
 *
 * Each layer is read-only (mode 0444) and must never be written: a test puts
 * an overlay of its own on top (`overlayOf(layer, dir, name)`), whose backing
 * chain is then overlay -> layer -> base.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { CACHE_DIR, overlayOf } from './images.js';

/** Bump when the way layers are made changes: it is part of the cache key. */
const LAYERS_VERSION = 1;
const DONE = '.complete';

/**
 * The layers `names` over `base`, as a map name -> path. When the cache has
 * no complete set for (base, recipe), `build` gets fresh writable overlays of
 * `base` (name -> path) to prepare; they are then made read-only and published
 * at once (a directory rename), so a concurrent or interrupted build never
 * leaves a half-made set where another run would take it.
 */
export async function cachedLayers(
  base: string, recipe: string, names: readonly string[],
  build: (layers: ReadonlyMap<string, string>) => Promise<void>,
): Promise<Map<string, string>> {
  const key = createHash('sha256').update(`${LAYERS_VERSION}\0${path.basename(base)}\0${[...names].sort().join('\0')}\0${recipe}`).digest('hex').slice(0, 16);
  const dir = path.join(CACHE_DIR, `layers-${key}`);
  const paths = (d: string) => new Map(names.map((n) => [n, path.join(d, `${n}.qcow2`)]));
  if (await fs.stat(path.join(dir, DONE)).then(() => true, () => false)) return paths(dir);
  await fs.mkdir(CACHE_DIR, { recursive: true });
  const tmp = `${dir}.tmp-${process.pid}`;
  await fs.rm(tmp, { recursive: true, force: true });
  await fs.mkdir(tmp);
  try {
    for (const n of names) await overlayOf(base, tmp, n);
    await build(paths(tmp));
    for (const p of paths(tmp).values()) await fs.chmod(p, 0o444); // a test writing to a cached layer fails loudly
    await fs.writeFile(path.join(tmp, DONE), `${recipe}\n`);
    await fs.rename(tmp, dir).catch(async (err: NodeJS.ErrnoException) => {
      // another process published the same set first: use theirs
      if (err.code !== 'ENOTEMPTY' && err.code !== 'EEXIST') throw err;
    });
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
  return paths(dir);
}
