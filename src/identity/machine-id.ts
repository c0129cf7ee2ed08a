/**
 * machine-id values. systemd wants 32 lowercase hex digits; it derives the
 * DHCP DUID/IAID and IPv6 stable addresses from it, so two clones with one
 * machine-id get one lease. New ids are shaped as UUID v4 like systemd's own.
 */
import { createHmac, randomBytes, randomFillSync } from 'node:crypto';

export const MACHINE_ID_RE = /^[0-9a-f]{32}$/;

function asV4(bytes: Buffer): string {
  const b = Buffer.from(bytes.subarray(0, 16));
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  return b.toString('hex');
}

export function generateMachineId(random: (n: number) => Buffer = pooledRandom): string {
  return asV4(random(16));
}

// `plan` makes one (pending) id per new machine: one getrandom call per 4 KiB, not per id.
const pool = Buffer.alloc(4096);
let poolAt = pool.length;

/** `n` (at most 4096) bytes from the system CSPRNG, taken from a pool refilled as it runs out. */
export function pooledRandom(n: number): Buffer {
  if (n > pool.length) return randomBytes(n);
  if (poolAt + n > pool.length) {
    randomFillSync(pool);
    poolAt = 0;
  }
  const out = Buffer.from(pool.subarray(poolAt, poolAt + n));
  pool.fill(0, poolAt, poolAt + n);
  poolAt += n;
  return out;
}

/** Stable per machine name and site secret: re-deriving after a rebuild gives the same id. */
export function deriveMachineId(secret: Buffer | string, machineName: string): string {
  return asV4(createHmac('sha256', secret).update('ghostprep machine-id\0' + machineName).digest());
}

/** The id in a machine-id file, or undefined for empty / "uninitialized" / malformed. */
export function parseMachineId(text: string | undefined | null): string | undefined {
  const v = (text ?? '').trim();
  return MACHINE_ID_RE.test(v) ? v : undefined;
}
