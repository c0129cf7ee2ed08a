/** Host tools: found on PATH, or a MissingToolError (exit code 4) that says how to install them. */
import fs from 'node:fs';
import path from 'node:path';
import { MissingToolError } from './errors.js';

export const QEMU_IMG_INSTALL = 'install it: apt-get install qemu-utils (Debian/Ubuntu) or dnf install qemu-img';

/** Full path of an executable on PATH, or undefined. */
export function findOnPath(tool: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (tool.includes('/')) return isExecutable(tool) ? tool : undefined;
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, tool);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/** Throw MissingToolError (exit code 4) unless `tool` is on PATH. */
export function requireTool(tool: string, install: string, env: NodeJS.ProcessEnv = process.env): string {
  const found = findOnPath(tool, env);
  if (!found) throw new MissingToolError(tool, install);
  return found;
}

