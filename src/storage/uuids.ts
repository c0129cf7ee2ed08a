/**
 * New identities for a clone's filesystems and partitions, derived rather
 * than drawn at random: the same machine gets the same values on every plan
 * and apply (a plan shows what apply will write; a re-deployed clone comes
 * back with the same UUIDs), and different machines get different ones.
 *
 * A value is the SHA-256 of the machine's name and the volume's place on its
 * disk ("part 2", "fs p2", "disk"), shaped as a random (version 4) UUID, or
 * for vfat as a volume serial XXXX-XXXX. The master's own value is not an
 * input: a clone planned again after apply finds its values already there
 * and plans no change.
 */
import { createHash } from 'node:crypto';

const DOMAIN = 'ghostprep storage identity v1';

function digest(machine: string, role: string): Buffer {
  return createHash('sha256').update(`${DOMAIN}\0${machine}\0${role}`).digest();
}

/** A version-4-shaped UUID (lowercase) for `role` of `machine`. */
export function deriveUuid(machine: string, role: string): string {
  const b = Buffer.from(digest(machine, role).subarray(0, 16));
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** A vfat volume serial (XXXX-XXXX, uppercase, as blkid prints it) for `role` of `machine`. */
export function deriveVfatSerial(machine: string, role: string): string {
  const h = digest(machine, role).subarray(0, 4).toString('hex').toUpperCase();
  return `${h.slice(0, 4)}-${h.slice(4)}`;
}

export const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const VFAT_SERIAL_RE = /^[0-9a-f]{4}-[0-9a-f]{4}$/i;

/** Two spellings of one identity are the same value (blkid prints lowercase, sgdisk and libguestfs uppercase). */
export function sameId(a: string | undefined, b: string | undefined): boolean {
  return a !== undefined && b !== undefined && a.toLowerCase() === b.toLowerCase();
}
