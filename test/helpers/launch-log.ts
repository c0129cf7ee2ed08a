/**
 * Where the suite's time goes, counted instead of clocked: with
 * GHOSTPREP_LAUNCH_LOG=FILE, scripts/test.mjs preloads this file into every
 * node process of the run (NODE_OPTIONS --import: mocha, and every ghostprep
 * run the tests start), and each process started through node:child_process
 * that costs real time is appended to FILE as one JSON line:
 *
 *   appliance   a libguestfs appliance launch: a guestfish `run`/`launch`
 *               (sent on its standard input, as GuestfsSession does, or given
 *               as arguments, or `-i`), or a virt-* tool; with its drive count
 *   vm          a QEMU boot (qemu-system-*)
 *   debootstrap, mkfs (mkfs.*, mke2fs, mkntfs), qemu-img, sfdisk, ghostprep (a CLI run)
 *
 * Each line names the group (GHOSTPREP_TEST_LANE) and the spec file running
 * when it started (GHOSTPREP_SPEC_FILE, set by scripts/timing-reporter.cjs in
 * the mocha process and inherited by its children). scripts/launch-table.mjs
 * prints the counts per file and per group. Wall clocks vary with the load of
 * the machine; these counts do not.
 *
 * Only node built-ins here: this loads before anything else in every process.
 */
import { appendFileSync } from 'node:fs';
import childProcess, { type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import path from 'node:path';

const LOG = process.env.GHOSTPREP_LAUNCH_LOG;

export type LaunchKind = 'appliance' | 'vm' | 'debootstrap' | 'mkfs' | 'qemu-img' | 'sfdisk' | 'ghostprep';

export interface LaunchRecord {
  readonly kind: LaunchKind;
  readonly group: string;
  readonly file: string;
  readonly tool: string;
  readonly drives?: number;
}

/** The command a spawn really runs: through `sh -c "…"` the first word of the script. */
export function commandOf(file: string, args: readonly string[]): { tool: string; args: readonly string[] } {
  const base = path.basename(file);
  if (['sh', 'bash', 'dash'].includes(base)) {
    const i = args.indexOf('-c');
    if (i >= 0 && args[i + 1]) {
      const words = args[i + 1]!.trim().split(/\s+/).filter((w) => !/^[A-Z_][A-Z0-9_]*=/.test(w) && w !== 'exec' && w !== 'sudo');
      return { tool: path.basename(words[0] ?? base), args: words.slice(1) };
    }
  }
  if (base === 'env' || base === 'nice' || base === 'timeout' || base === 'strace') {
    // the command after the wrapper's own options (strace -f -e trace=execve -o F CMD…, timeout 30 CMD…)
    let i = 0;
    while (i < args.length && (args[i]!.startsWith('-') || /^[A-Z_][A-Z0-9_]*=/.test(args[i]!) || /^\d/.test(args[i]!) || ['-e', '-o', '-s'].includes(args[i - 1] ?? ''))) i++;
    if (i < args.length) return commandOf(args[i]!, args.slice(i + 1));
  }
  return { tool: base, args };
}

/** What one spawn costs, or undefined for a cheap tool (ssh-keygen, cp…). Appliances from guestfish's stdin are counted separately. */
export function classify(tool: string, args: readonly string[]): Omit<LaunchRecord, 'group' | 'file'> | undefined {
  if (tool === 'guestfish') {
    if (args.includes('--version') || args.includes('-h') || args.includes('--help')) return undefined;
    const launches = args.includes('-i') || args.includes('--inspector') || args.some((a) => a === 'run' || a === 'launch');
    if (!launches) return undefined; // commands on stdin: counted when `run` is written
    return { kind: 'appliance', tool, drives: args.filter((a) => a === '-a' || a === '--add').length };
  }
  if (/^virt-/.test(tool) && !['virt-what', 'virt-host-validate'].includes(tool)) {
    if (args.includes('--version') || args.includes('--help')) return undefined;
    return { kind: 'appliance', tool, drives: args.filter((a) => a === '-a' || a === '--add').length || 1 };
  }
  if (/^qemu-system-/.test(tool)) return { kind: 'vm', tool };
  if (tool === 'debootstrap') return { kind: 'debootstrap', tool };
  if (/^mkfs(\.|$)/.test(tool) || tool === 'mke2fs' || tool === 'mkntfs') return { kind: 'mkfs', tool };
  if (tool === 'qemu-img' && args[0] !== 'info' && !args.includes('--version')) return { kind: 'qemu-img', tool };
  if (tool === 'sfdisk') return { kind: 'sfdisk', tool };
  if (tool === 'node' && args.some((a) => /dist\/src\/cli\/main\.js$/.test(a))) return { kind: 'ghostprep', tool: 'ghostprep' };
  return undefined;
}

/** Appliance launches in a guestfish script: `run`/`launch` lines (GuestfsSession sends `-run`), with the drives added before each. */
export class GuestfishScript {
  private drives = 0;
  /** Feed a chunk of standard input; returns the drive count of each launch it holds. */
  feed(text: string): number[] {
    const launches: number[] = [];
    for (const raw of text.split('\n')) {
      const line = raw.trim().replace(/^-/, '');
      const cmd = line.split(/\s+/)[0];
      if (cmd === 'add-drive' || cmd === 'add' || cmd === 'add-drive-opts' || cmd === 'add-ro' || cmd === 'add-drive-ro') this.drives++;
      else if (cmd === 'run' || cmd === 'launch') launches.push(this.drives);
    }
    return launches;
  }
}

function record(r: Omit<LaunchRecord, 'group' | 'file'>): void {
  const full: LaunchRecord = { ...r, group: process.env.GHOSTPREP_TEST_LANE ?? 'mocha', file: process.env.GHOSTPREP_SPEC_FILE ?? '(outside a spec)' };
  try { appendFileSync(LOG!, JSON.stringify(full) + '\n'); } catch { /* the count is best effort; the test is not */ }
}

function argsOf(a: unknown): string[] {
  return Array.isArray(a) ? a.map(String) : [];
}

/** Record one spawn; for a guestfish fed on stdin, watch what is written to it. */
function observe(file: string, rawArgs: unknown, options: unknown, child?: ChildProcess): void {
  let { tool, args } = commandOf(String(file), argsOf(rawArgs));
  if (typeof rawArgs === 'string' && !Array.isArray(rawArgs)) ({ tool, args } = commandOf('sh', ['-c', `${file} ${rawArgs}`]));
  const c = classify(tool, args);
  if (c) record(c);
  if (tool !== 'guestfish' || c) return;
  const script = new GuestfishScript();
  const input = (options as { input?: unknown } | undefined)?.input;
  // execa writes `input` to the child's stdin itself: counted here, its stdin is not watched too
  if (typeof input === 'string' || Buffer.isBuffer(input)) {
    for (const d of script.feed(String(input))) record({ kind: 'appliance', tool, drives: d });
    return;
  }
  const stdin = child?.stdin;
  if (stdin) {
    const seen = (chunk: unknown): void => {
      if (typeof chunk === 'string' || Buffer.isBuffer(chunk)) for (const d of script.feed(String(chunk))) record({ kind: 'appliance', tool, drives: d });
    };
    // end(chunk) writes its chunk without calling write(): both are watched
    const s = stdin as unknown as { write: (...a: unknown[]) => boolean; end: (...a: unknown[]) => unknown };
    const write = s.write.bind(stdin);
    const end = s.end.bind(stdin);
    s.write = (chunk: unknown, ...rest: unknown[]) => { seen(chunk); return write(chunk, ...rest); };
    s.end = (chunk: unknown, ...rest: unknown[]) => { if (typeof chunk !== 'function') seen(chunk); return end(chunk, ...rest); };
  }
}

if (LOG) {
  const cp = createRequire(import.meta.url)('node:child_process') as typeof childProcess;
  const wrap = <F extends (...a: never[]) => unknown>(name: keyof typeof childProcess, fn: F, shell: boolean): void => {
    const wrapped = function (this: unknown, ...a: unknown[]) {
      const out = (fn as unknown as (...x: unknown[]) => unknown).apply(this, a);
      try {
        if (shell) observe('sh', ['-c', String(a[0])], undefined, out as ChildProcess);
        else observe(String(a[0]), Array.isArray(a[1]) ? a[1] : [], Array.isArray(a[1]) ? a[2] : a[1], (out as ChildProcess)?.stdin ? (out as ChildProcess) : undefined);
      } catch { /* never break the spawn */ }
      return out;
    };
    // util.promisify(execFile / exec) resolves {stdout, stderr} through this symbol: keep it, counted too
    const custom = (fn as unknown as Record<symbol, unknown>)[promisify.custom] as ((...x: unknown[]) => Promise<unknown>) | undefined;
    if (custom) {
      Object.defineProperty(wrapped, promisify.custom, {
        value(...a: unknown[]) {
          const p = custom(...a) as Promise<unknown> & { child?: ChildProcess };
          try {
            if (shell) observe('sh', ['-c', String(a[0])], undefined, p.child);
            else observe(String(a[0]), Array.isArray(a[1]) ? a[1] : [], Array.isArray(a[1]) ? a[2] : a[1], p.child?.stdin ? p.child : undefined);
          } catch { /* never break the spawn */ }
          return p;
        },
      });
    }
    (cp as unknown as Record<string, unknown>)[name] = wrapped;
  };
  wrap('spawn', cp.spawn, false);
  wrap('spawnSync', cp.spawnSync, false);
  wrap('execFile', cp.execFile, false);
  wrap('execFileSync', cp.execFileSync, false);
  wrap('exec', cp.exec, true);
  wrap('execSync', cp.execSync, true);
  syncBuiltinESMExports();
}
