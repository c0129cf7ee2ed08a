/**
 * Raw bytes written to an appliance device at given offsets (a GPT copy, a
 * LUKS binary header, a vfat volume serial): through `upload-offset` of a
 * host file that only this process can read, because the bytes may hold NUL,
 * which no guestfish argument can carry. Never for secrets: the file is on
 * the host's temporary directory while it is written.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { GuestfsSession } from './session.js';

export interface ByteWrite { readonly offset: number; readonly bytes: Buffer }

/** Each write in order, one `upload-offset` each. */
export async function uploadBytes(session: GuestfsSession, device: string, writes: readonly ByteWrite[]): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'ghostprep-bytes-'));
  try {
    for (const [i, w] of writes.entries()) {
      const file = path.join(dir, String(i));
      await writeFile(file, w.bytes, { mode: 0o600 });
      await session.command('upload-offset', [file, device, w.offset]);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
