/**
 * sha256 of base images, with a cache keyed on path + size + mtime so that a
 * thousand clones of one base hash it once (a 20 GB base takes minutes).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

export interface Sha256Progress {
  readonly bytes: number;
  readonly total: number;
}

/** Stream a file through sha256; progress at most every 64 MiB and at the end. */
export async function sha256File(file: string, onProgress?: (p: Sha256Progress) => void): Promise<string> {
  const total = (await fs.stat(file)).size;
  const h = createHash('sha256');
  let bytes = 0;
  let reported = 0;
  for await (const chunk of createReadStream(file, { highWaterMark: 4 * 1024 * 1024 })) {
    h.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
    if (onProgress && bytes - reported >= 64 * 1024 * 1024) {
      reported = bytes;
      onProgress({ bytes, total });
    }
  }
  onProgress?.({ bytes, total });
  return h.digest('hex');
}

export function defaultSha256Cache(): string {
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'ghostprep', 'sha256.json');
}

interface CacheEntry {
  readonly size: number;
  readonly mtimeMs: number;
  readonly sha256: string;
}

async function readCache(cacheFile: string): Promise<Record<string, CacheEntry>> {
  try {
    const data = JSON.parse(await fs.readFile(cacheFile, 'utf8')) as unknown;
    return data && typeof data === 'object' ? (data as Record<string, CacheEntry>) : {};
  } catch {
    return {}; // missing or corrupt cache: just hash again
  }
}

/** Write the cache atomically; a cache we cannot write only costs time. */
async function writeCache(cacheFile: string, data: Record<string, CacheEntry>): Promise<void> {
  try {
    await fs.mkdir(path.dirname(cacheFile), { recursive: true });
    const tmp = `${cacheFile}.tmp-${process.pid}`;
    await fs.writeFile(tmp, JSON.stringify(data, null, 1) + '\n');
    await fs.rename(tmp, cacheFile);
  } catch {
    /* read-only home, full disk: the next run hashes again */
  }
}

/** sha256 of `file`, from the cache when its size and mtime are unchanged. */
export async function cachedSha256(file: string, cacheFile = defaultSha256Cache(), onProgress?: (p: Sha256Progress) => void): Promise<{ sha256: string; cached: boolean }> {
  const real = await fs.realpath(file);
  const st = await fs.stat(real);
  const cache = await readCache(cacheFile);
  const hit = cache[real];
  if (hit && hit.size === st.size && hit.mtimeMs === st.mtimeMs) return { sha256: hit.sha256, cached: true };
  const sha256 = await sha256File(real, onProgress);
  await writeCache(cacheFile, { ...(await readCache(cacheFile)), [real]: { size: st.size, mtimeMs: st.mtimeMs, sha256 } });
  return { sha256, cached: false };
}
