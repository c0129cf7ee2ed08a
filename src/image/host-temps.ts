/**
 * Temp images named by the host and pid of the run that writes them
 * (`.NAME.qcow2.STEP-HOST-PID`), so that a later run can remove those of runs
 * killed on this host: each is a whole image's worth of disk. The host, because
 * a library or an output directory may sit on storage several hosts share; a
 * temp file of another host is left alone, since its pid cannot be checked
 * from here. (Clone temp files of restore have their own scheme: restore.ts.)
 */
import { readdir, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import { processAlive } from '../util/process.js';

/** The temp name of `file` (a path) for `step` ("capture", "decrypt") in this process. */
export function hostTempName(file: string, step: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.${step}-${hostname()}-${process.pid}`);
}

/** Remove the `step` temp files in `dir` whose run is gone from this host; returns their names. */
export async function removeDeadHostTemps(dir: string, step: string): Promise<string[]> {
  const here = hostname();
  const re = new RegExp(`^\\..+\\.${step}-(.+)-(\\d+)$`);
  const removed: string[] = [];
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const m = re.exec(name);
    if (!m || m[1] !== here || processAlive(Number(m[2]))) continue;
    await rm(path.join(dir, name), { force: true });
    removed.push(name);
  }
  return removed;
}
