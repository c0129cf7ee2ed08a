/**
 * Image formats from file names, never probed from content: probing a raw
 * image lets a guest that writes a qcow2 header into its own disk make the
 * host open a backing file of the guest's choosing (the classic qemu CVE).
 */
import path from 'node:path';
import { GhostprepError } from '../util/errors.js';

const BY_EXTENSION: Readonly<Record<string, string>> = {
  '.qcow2': 'qcow2', '.qcow': 'qcow2', '.raw': 'raw', '.img': 'raw',
  '.vmdk': 'vmdk', '.vdi': 'vdi', '.vhdx': 'vhdx', '.vhd': 'vpc',
};

export const KNOWN_FORMATS: readonly string[] = ['qcow2', 'raw', 'vmdk', 'vdi', 'vhdx', 'vpc'];

/** The qemu format name for an image path; `override` wins; /dev paths are raw. */
export function imageFormat(file: string, override?: string): string {
  if (override) {
    if (!KNOWN_FORMATS.includes(override)) throw new GhostprepError(`unknown image format "${override}" (known: ${KNOWN_FORMATS.join(', ')})`);
    return override;
  }
  if (file.startsWith('/dev/')) return 'raw';
  const fmt = BY_EXTENSION[path.extname(file).toLowerCase()];
  if (!fmt) throw new GhostprepError(`${file}: cannot tell the image format from the extension; name it .qcow2/.raw/.img/.vmdk/.vdi/.vhdx or give the format explicitly`);
  return fmt;
}
