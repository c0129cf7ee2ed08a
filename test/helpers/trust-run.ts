/**
 * The trust suite's way to run the CLI: asynchronously, with a hard timeout
 * (a hang is a failure, never a stuck CI job), and with every output kept
 * for the secrets scan (test/trust/secrets.test.ts): stdout, stderr, the
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
  /**
   * Run under `strace -f` tracing execve into this file: the argv and the
   * environment of every process the run starts, however short-lived (the
   * /proc sampler sees only those alive at a 100 ms tick). See execveCalls.
   */
  readonly trace?: string;
}

/** strace's arguments for RunOptions.trace: execve only (seccomp-bpf: the other syscalls of qemu run untraced), with environments (-v), strings whole. */
export function straceArgs(file: string): string[] {
  return ['-f', '-qq', '--seccomp-bpf', '-v', '-e', 'trace=execve', '-s', '65536', '-o', file];
}

export interface ExecveCall { readonly pid: number; readonly program: string; readonly line: string }

/** The execve calls of a trace written by gp({ trace }): one per process image started, with its whole strace line (argv and env). */
export function execveCalls(file: string): ExecveCall[] {
  const out: ExecveCall[] = [];
  for (const line of readFileSync(file, 'latin1').split('\n')) {
    const m = /^(\d+)\s+execve\("([^"]*)"/.exec(line);
    // failed ones too (execve of a PATH candidate that is not there): the argv was built all the same
    if (m) out.push({ pid: Number(m[1]), program: path.basename(m[2]!), line });
  }
  return out;
}

/**
 * Every secret known so far (`secrets`) found in the argv or environment of an
 * execve of the trace. `allowInFirst`: strings the first execve (the traced
 * ghostprep itself, started by the test) may carry, such as the variable a
 * test hands a key in with --key-env; its children may not.
 */
export function traceLeaks(calls: readonly ExecveCall[], allowInFirst: readonly string[] = []): string[] {
  const leaks: string[] = [];
  for (const [i, c] of calls.entries()) {
    for (const [needle, what] of secrets) {
      if (!c.line.includes(needle)) continue;
      if (i === 0 && allowInFirst.some((a) => a.includes(needle))) continue;
      const at = c.line.indexOf(needle);
      leaks.push(`${what} in execve of ${c.program} (pid ${c.pid}): …${c.line.slice(Math.max(0, at - 60), at + 16)}…`);
    }
  }
  return leaks;
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
  const [cmd, ...argv] = opts.trace ? ['strace', ...straceArgs(opts.trace), process.execPath, CLI, ...args] : [process.execPath, CLI, ...args];
  const child = spawn(cmd!, argv, {
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
