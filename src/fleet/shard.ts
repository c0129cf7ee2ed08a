/**
 * --shard I/N: a stable, balanced slice of the inventory. A machine's shard
 * depends only on its name (FNV-1a hash, then murmur3's finalizer), so adding
 * machines does not move the others. The finalizer matters: FNV-1a's low bits
 * depend only on the low bits of the characters, so `% 4` of plain FNV split
 * 2000 names like rack7-n00123 as 403/500/500/597.
 */
import { GhostprepError } from '../util/errors.js';

export interface Shard { readonly index: number; readonly count: number }

/** "I/N" with 0 <= I < N (Slurm array IDs and Kubernetes JOB_COMPLETION_INDEX count from 0). */
export function parseShard(text: string): Shard {
  const m = /^(\d+)\/(\d+)$/.exec(text.trim());
  if (!m) throw new GhostprepError(`--shard "${text}": expected I/N, e.g. 0/4`);
  const index = Number(m[1]);
  const count = Number(m[2]);
  if (count < 1 || index >= count) throw new GhostprepError(`--shard "${text}": need 0 <= I < N`);
  return { index, count };
}

export function shardOf(name: string, count: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return (h >>> 0) % count;
}

export function selectShard<T extends { name: string }>(machines: readonly T[], shard: Shard): T[] {
  return machines.filter((m) => shardOf(m.name, shard.count) === shard.index);
}
