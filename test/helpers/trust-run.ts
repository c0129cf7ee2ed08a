/**
 * The trust suite's way to run the CLI: asynchronously, with a hard timeout
 * (a hang is a failure, never a stuck CI job), and with every output kept
 * for the secrets scan (test/trust/zz-secrets.test.ts): stdout, stderr, the
 * files a run wrote (reports, plan JSON) and the command lines of every
 * process seen while it ran (ghostprep, guestfish, qemu, qemu-img,
 * ssh-keygen), sampled from /proc.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { REPO } from './rootfs.js';
import { captured, secrets } from './trust-counts.js';

export { captured, secrets, type Captured } from './trust-counts.js';

export const CLI = path.join(REPO, 'dist/src/cli/main.js');

export function recordOutput(label: string, text: string): void {
  if (text) captured.push({ label, text });
}

/** Keep a file's contents now (its directory may be gone when the scan runs). */
export function recordFile(file: string): void {
  if (existsSync(file) && statSync(file).isFile()) recordOutput(`file ${file}`, readFileSync(file, 'latin1'));
}

export function addSecret(what: string, value: string): void {
  const v = value.trim();
  if (v.length >= 12) secrets.set(v, what);
}

/**
 * Every private key in a state dir: each base64 line of the PEM body is a
 * needle (a leak of any part is a leak).
 */
export function addStateSecrets(stateDir: string): number {
  let n = 0;
  const walk = (d: string): void => {
    if (!existsSync(d)) return;
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && /_key$/.test(e.name)) {
        // an OpenSSH private key embeds its public key: lines the .pub holds as well are not secret
        const pub = existsSync(p + '.pub') ? readFileSync(p + '.pub', 'utf8') : '';
        const body = readFileSync(p, 'utf8').split('\n').filter((l) => l && !l.startsWith('-----') && !pub.includes(l));
        for (const line of body) addSecret(`private key ${path.relative(stateDir, p)}`, line);
        n++;
      }
    }
  };
  walk(stateDir);
  return n;
}

export interface RunResult {
  readonly status: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;
  readonly ms: number;
}

export interface RunOptions {
  readonly timeoutMs?: number;
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Called once the process is running (to kill it at some point, say). */
  readonly onSpawn?: (child: ChildProcess) => void;
  readonly label?: string;
}

const seenCmdlines = new Set<string>();

function sampleCmdlines(): void {
  let pids: string[];
  try { pids = readdirSync('/proc').filter((p) => /^\d+$/.test(p)); } catch { return; }
  for (const pid of pids) {
    let cmd: string;
    try { cmd = readFileSync(`/proc/${pid}/cmdline`, 'latin1'); } catch { continue; }
    if (!cmd || !/ghostprep|guestfish|qemu|ssh-keygen|supermin/.test(cmd)) continue;
    const line = cmd.split('\0').join(' ').trim();
    if (!seenCmdlines.has(line)) {
      seenCmdlines.add(line);
      recordOutput(`cmdline of pid ${pid}`, line);
    }
  }
}

/** Run the built CLI; resolves when it exits (or is killed at timeoutMs: timedOut). */
export function gp(args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const started = Date.now();
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: opts.cwd ?? REPO,
    env: { ...process.env, LIBGUESTFS_BACKEND_SETTINGS: 'force_tcg', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  let timedOut = false;
  const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, opts.timeoutMs ?? 600_000);
  const sampler = setInterval(sampleCmdlines, 100);
  opts.onSpawn?.(child);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      clearInterval(sampler);
      const label = opts.label ?? `ghostprep ${args.slice(0, 2).join(' ')}`;
      recordOutput(`${label}: stdout`, stdout);
      recordOutput(`${label}: stderr`, stderr);
      resolve({ status, signal, stdout, stderr, timedOut, ms: Date.now() - started });
    });
  });
}

/** A short description of a run for assertion messages. */
export function show(r: RunResult): string {
  return `exit ${r.status}${r.signal ? ` (${r.signal})` : ''}${r.timedOut ? ' TIMED OUT' : ''}\n--- stdout\n${r.stdout.slice(0, 3000)}\n--- stderr\n${r.stderr.slice(0, 3000)}`;
}
