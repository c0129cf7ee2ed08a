/**
 * GuestfsSession: ONE long-lived guestfish process (one appliance) driven
 * through its standard input, with many drives and many commands.
 *
 * Protocol (chosen by measurement, see docs/design/guestfs.md): guestfish
 * reads commands from a pipe. Each command is sent as three lines:
 *
 *     -CMD ARGS…            the "-" prefix: a failing command does not end guestfish
 *     echo NONCE:SEQ        stdout sentinel: everything before it is CMD's output
 *     -NONCE_SEQ            unknown command, i.e. a stderr sentinel
 *                           ("NONCE_SEQ: unknown command"): everything before it
 *                           on stderr belongs to CMD
 *
 * NONCE is 128 random bits per session, so no guest content can forge a
 * sentinel. Measured on this project's machines (TCG, 2 cores): a round trip
 * costs 0.2 ms (`echo`) to ~2 ms (`write`, `pread`, `lstatns`), against 67 ms
 * to 85 ms with `guestfish --listen` + one `guestfish --remote` process per
 * command. guestfish reads at most ~8 KiB per line, so lines are capped at
 * MAX_LINE and bigger contents go through `upload` from a host temp file.
 */
import { randomBytes } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import { execa, type ResultPromise } from 'execa';
import { GuestError } from '../../util/errors.js';
import { guestfsEnv, GUESTFISH_INSTALL } from './env.js';
import { requireTool } from '../../util/tools.js';

/**
 * GHOSTPREP_TRACE=FILE appends one line per guestfish command (time, duration,
 * outcome, command name and its first argument, never the rest: contents and
 * keys stay out) for profiling a deploy from outside.
 */
function traceToFile(file: string | undefined): SessionOptions['trace'] {
  if (!file) return undefined;
  return (line, ms, ok) => {
    const head = line.split(' ').slice(0, 2).join(' ').slice(0, 200);
    appendFileSync(file, `${Date.now()} ${ms} ${ok ? 'ok' : 'fail'} ${head}\n`, { mode: 0o600 });
  };
}

/** guestfish's line reader gives up past ~8 KiB; stay well below. */
export const MAX_LINE = 4000;
export const DEFAULT_COMMAND_TIMEOUT_MS = 10 * 60_000;
/** 255 drives took 122 s to launch under TCG; leave room for a loaded machine. */
export const DEFAULT_LAUNCH_TIMEOUT_MS = 15 * 60_000;

export interface DriveSpec {
  readonly path: string;
  /** qcow2, raw, vmdk…: always explicit, never probed from content. */
  readonly format: string;
  readonly readonly: boolean;
}

export interface SessionOptions {
  readonly drives?: readonly DriveSpec[];
  readonly commandTimeoutMs?: number;
  readonly launchTimeoutMs?: number;
  /** Appliance memory in MiB (guestfish -m); libguestfs's default otherwise. */
  readonly memsizeMb?: number;
  readonly verbose?: (msg: string) => void;
  /** Called after every command with its line and duration (profiling, -vv). */
  readonly trace?: (line: string, ms: number, ok: boolean) => void;
  readonly env?: NodeJS.ProcessEnv;
}

/** An optional argument `key:value` (add-drive format:qcow2 readonly:true). */
export interface OptArg {
  readonly opt: string;
  readonly value: string | number | boolean;
}
/** Buffers are sent byte for byte (escaped), strings as UTF-8. */
export type Arg = string | Buffer | number | boolean | OptArg;

export interface CommandOptions {
  readonly timeoutMs?: number;
}

/** A guestfish command failed (the session goes on) or the session itself died. */
export class GuestfsError extends GuestError {
  constructor(
    message: string,
    /** The guestfish command line as sent (without the "-" prefix). */
    readonly command: string,
    /** guestfs's own message (stderr), prefixes removed. */
    readonly stderr: string,
    options?: { path?: string; cause?: unknown },
  ) {
    super(message, options?.path, options);
  }
  /** ENOENT from the appliance. */
  get notFound(): boolean {
    return /No such file or directory/.test(this.stderr);
  }
}

/** Device name of the drive added at `index` (0 → /dev/sda, 26 → /dev/sdaa). */
export function driveDevice(index: number): string {
  let n = index;
  let name = '';
  do {
    name = String.fromCharCode(97 + (n % 26)) + name;
    n = Math.floor(n / 26) - 1;
  } while (n >= 0);
  return `/dev/sd${name}`;
}

/**
 * Quote one argument for guestfish: double quotes, with every byte outside
 * printable ASCII (and `"`, `\`) as \xHH. NUL cannot be expressed at all.
 */
export function quoteArg(value: string | Buffer): string {
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  let out = '"';
  for (const b of bytes) {
    if (b === 0) throw new RangeError('guestfish arguments cannot contain NUL bytes');
    if (b >= 0x20 && b < 0x7f && b !== 0x22 && b !== 0x5c) out += String.fromCharCode(b);
    else out += '\\x' + b.toString(16).padStart(2, '0');
  }
  return out + '"';
}

function formatArg(arg: Arg): string {
  if (typeof arg === 'string' || Buffer.isBuffer(arg)) return quoteArg(arg);
  if (typeof arg === 'number') {
    if (!Number.isSafeInteger(arg)) throw new RangeError(`not an integer argument: ${arg}`);
    return String(arg);
  }
  if (typeof arg === 'boolean') return String(arg);
  const value = String(arg.value);
  // Optional arguments are not unquoted by guestfish's parser: allow only plain words.
  if (!/^[a-z_]+$/.test(arg.opt) || !/^[A-Za-z0-9_.,=+/-]+$/.test(value)) {
    throw new RangeError(`unsafe optional argument ${arg.opt}:${value}`);
  }
  return `${arg.opt}:${value}`;
}

/** One guestfish command line; throws if it would not fit guestfish's line reader. */
export function commandLine(name: string, args: readonly Arg[]): string {
  if (!/^[a-z][a-z0-9-]*$/.test(name)) throw new RangeError(`bad guestfish command name: ${name}`);
  const line = [name, ...args.map(formatArg)].join(' ');
  if (line.length > MAX_LINE) throw new RangeError(`guestfish command line too long (${line.length} bytes): ${name}`);
  return line;
}

/** guestfs's message without guestfish's `*stdin*:N: ` and `libguestfs: error: ` prefixes; warnings dropped. */
export function cleanStderr(stderr: string): string {
  return stderr
    .split('\n')
    .map((l) => l.replace(/^\*stdin\*:\d+: /, ''))
    .filter((l) => l.trim() && !/^libguestfs: warning: /.test(l))
    .map((l) => l.replace(/^libguestfs: error: /, ''))
    .join('\n');
}

interface Pending {
  readonly line: string;
  readonly stdoutMark: Buffer;
  readonly stderrMark: string;
  readonly resolve: (out: Buffer) => void;
  readonly reject: (err: Error) => void;
  readonly started: number;
  timer?: NodeJS.Timeout;
}

/** guestfs's words for an appliance (qemu) that is gone while guestfish still runs. */
const APPLIANCE_DIED = /appliance closed the connection unexpectedly|child process died unexpectedly|call launch before using this function/;

const live = new Set<GuestfsSession>();
let handlersInstalled = false;

/** Kill every live appliance: used on process exit and on SIGINT/SIGTERM/SIGHUP. */
function killAllSync(): void {
  for (const s of live) s.kill();
}

function installProcessHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', killAllSync);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const handler = (): void => {
      killAllSync();
      // We only meant to clean up: when nobody else handles the signal,
      // restore the default action (die by that signal) and re-raise it.
      if (process.listenerCount(sig) === 1) {
        process.removeListener(sig, handler);
        process.kill(process.pid, sig);
      }
    };
    process.on(sig, handler);
  }
}

export class GuestfsSession {
  readonly drives: readonly DriveSpec[];
  private readonly nonce = 'GP' + randomBytes(16).toString('hex');
  private readonly child: ResultPromise;
  private readonly commandTimeoutMs: number;
  private readonly trace: SessionOptions['trace'];
  private seq = 0;
  private stdout: Buffer = Buffer.alloc(0);
  private stderr = '';
  private stderrTail = '';
  private pending: Pending | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private closedError: GuestfsError | undefined;
  private exited: Promise<void>;

  private constructor(options: SessionOptions) {
    const env = guestfsEnv(options.env ?? process.env, options.verbose);
    requireTool('guestfish', GUESTFISH_INSTALL, env);
    this.drives = options.drives ?? [];
    this.commandTimeoutMs = options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    this.trace = options.trace ?? traceToFile(env.GHOSTPREP_TRACE);
    // --keys-from-stdin: a passphrase (guest LUKS) is read from the line after
    // its command, never from a terminal and never from our argv.
    const args = ['--keys-from-stdin', ...(options.memsizeMb ? ['-m', String(options.memsizeMb)] : [])];
    // detached: guestfish, qemu and libguestfs's recovery process get their
    // own process group, which kill() ends as a whole; a terminal's Ctrl-C
    // reaches us, and our handler ends the group.
    this.child = execa('guestfish', args, {
      env, extendEnv: false, stdin: 'pipe', stdout: 'pipe', stderr: 'pipe',
      buffer: false, detached: true, cleanup: false, reject: false,
    });
    this.child.stdin?.on('error', () => undefined); // EPIPE after death is handled by onExit
    this.child.stdout?.on('data', (d: Buffer) => this.onStdout(d));
    this.child.stderr?.on('data', (d: Buffer) => this.onStderr(d));
    this.exited = this.child.then((r) => this.onExit(r.exitCode, r.signal), (e: unknown) => this.onExit(undefined, String(e)));
    live.add(this);
    installProcessHandlers();
  }

  /** Start guestfish, add the drives and launch the appliance. */
  static async open(options: SessionOptions = {}): Promise<GuestfsSession> {
    const session = new GuestfsSession(options);
    try {
      for (const d of session.drives) await session.addDrive(d);
      await session.command('run', [], { timeoutMs: options.launchTimeoutMs ?? DEFAULT_LAUNCH_TIMEOUT_MS });
      return session;
    } catch (err) {
      await session.close();
      throw err;
    }
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get alive(): boolean {
    return this.closedError === undefined;
  }

  private addDrive(d: DriveSpec): Promise<Buffer> {
    return this.command('add-drive', [d.path, { opt: 'format', value: d.format }, { opt: 'readonly', value: d.readonly }]);
  }

  /** Run one command; resolves with its raw stdout, rejects with GuestfsError. */
  command(name: string, args: readonly Arg[] = [], options: CommandOptions = {}): Promise<Buffer> {
    return this.enqueue(commandLine(name, args), options);
  }

  /**
   * Run a command that takes a key parameter (cryptsetup-open, luks-format…):
   * guestfish reads the key from the line after the command. The key never
   * appears in errors, traces or process arguments.
   */
  commandWithKey(name: string, args: readonly Arg[], key: string, options: CommandOptions = {}): Promise<Buffer> {
    if (/[\n\r\0]/.test(key)) throw new RangeError('a passphrase given to guestfish cannot contain newlines or NUL bytes');
    return this.enqueue(commandLine(name, args), options, key);
  }

  /** A command with several key parameters (luks-add-key: the existing key, then the new one), one line each. */
  commandWithKeys(name: string, args: readonly Arg[], keys: readonly string[], options: CommandOptions = {}): Promise<Buffer> {
    if (keys.some((k) => /[\n\r\0]/.test(k))) throw new RangeError('a passphrase given to guestfish cannot contain newlines or NUL bytes');
    return this.enqueue(commandLine(name, args), options, keys.join('\n'));
  }

  /** Commands run one at a time, in call order, whatever the previous one's outcome. */
  private enqueue(line: string, options: CommandOptions, key?: string): Promise<Buffer> {
    const run = (): Promise<Buffer> => this.send(line, options.timeoutMs ?? this.commandTimeoutMs, key);
    const result = this.queue.then(run, run);
    this.queue = result.catch(() => undefined);
    return result;
  }

  /** Output as text without the trailing newline guestfish adds to strings. */
  async text(name: string, args: readonly Arg[] = [], options?: CommandOptions): Promise<string> {
    return (await this.command(name, args, options)).toString('utf8').replace(/\n$/, '');
  }

  /** Output as lines (RStringList). */
  async lines(name: string, args: readonly Arg[] = [], options?: CommandOptions): Promise<string[]> {
    const t = await this.text(name, args, options);
    return t === '' ? [] : t.split('\n');
  }

  async bool(name: string, args: readonly Arg[] = [], options?: CommandOptions): Promise<boolean> {
    return (await this.text(name, args, options)) === 'true';
  }

  /** `key: value` lines (RStruct, RHashtable). */
  async fields(name: string, args: readonly Arg[] = [], options?: CommandOptions): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const l of await this.lines(name, args, options)) {
      const i = l.indexOf(': ');
      if (i > 0) out[l.slice(0, i).trim()] = l.slice(i + 2);
    }
    return out;
  }

  private send(line: string, timeoutMs: number, key?: string): Promise<Buffer> {
    if (this.closedError) return Promise.reject(this.withCommand(this.closedError, line));
    const seq = ++this.seq;
    return new Promise<Buffer>((resolve, reject) => {
      const p: Pending = {
        line, resolve, reject, started: Date.now(),
        stdoutMark: Buffer.from(`${this.nonce}:${seq}\n`),
        stderrMark: `${this.nonce}_${seq}: unknown command\n`,
      };
      p.timer = setTimeout(() => this.onTimeout(p, timeoutMs), timeoutMs);
      this.pending = p;
      const keyLine = key === undefined ? '' : `${key}\n`;
      this.child.stdin?.write(`-${line}\n${keyLine}echo ${this.nonce}:${seq}\n-${this.nonce}_${seq}\n`);
    });
  }

  private onStdout(d: Buffer): void {
    this.stdout = this.stdout.length ? Buffer.concat([this.stdout, d]) : d;
    this.settle();
  }

  private onStderr(d: Buffer): void {
    const s = d.toString('utf8');
    this.stderr += s;
    this.stderrTail = (this.stderrTail + s).slice(-4000);
    this.settle();
  }

  /** Complete the pending command once both sentinels have arrived. */
  private settle(): void {
    const p = this.pending;
    if (!p) return;
    const i = this.stdout.indexOf(p.stdoutMark);
    const j = this.stderr.indexOf(p.stderrMark);
    if (i < 0 || j < 0) return;
    const out = Buffer.from(this.stdout.subarray(0, i));
    const err = cleanStderr(this.stderr.slice(0, j));
    this.stdout = this.stdout.subarray(i + p.stdoutMark.length);
    this.stderr = this.stderr.slice(j + p.stderrMark.length);
    this.pending = undefined;
    clearTimeout(p.timer);
    this.trace?.(p.line, Date.now() - p.started, !err);
    if (err && APPLIANCE_DIED.test(err)) {
      // qemu died under a live guestfish (killed, OOM): every later command would fail too.
      // End the session, so that the backend relaunches for the guests not yet visited.
      this.closedError ??= new GuestfsError(`the appliance died: ${err}`, p.line, err);
      this.kill();
    }
    if (err) p.reject(new GuestfsError(`guestfish ${shorten(p.line)}: ${err}`, p.line, err));
    else p.resolve(out);
  }

  private onTimeout(p: Pending, timeoutMs: number): void {
    if (this.pending !== p) return;
    // A command in flight cannot be cancelled: the appliance is lost.
    this.fail(new GuestfsError(`guestfish ${shorten(p.line)}: timed out after ${Math.round(timeoutMs / 1000)} s; appliance killed`, p.line, ''));
    this.kill();
  }

  private onExit(code: number | undefined, signal: string | undefined): void {
    live.delete(this);
    const how = signal ? `signal ${signal}` : `exit code ${code}`;
    this.fail(new GuestfsError(`guestfish exited (${how}): ${cleanStderr(this.stderrTail) || 'no message'}`, '', cleanStderr(this.stderrTail)));
  }

  /** Mark the session dead and reject the command in flight. */
  private fail(err: GuestfsError): void {
    this.closedError ??= err;
    const p = this.pending;
    this.pending = undefined;
    if (p) {
      clearTimeout(p.timer);
      p.reject(this.withCommand(err, p.line));
    }
  }

  private withCommand(err: GuestfsError, line: string): GuestfsError {
    if (err.command === line) return err;
    return new GuestfsError(`guestfish ${shorten(line)}: session closed: ${err.message}`, line, err.stderr, { cause: err });
  }

  /**
   * Clean shutdown: `exit` closes the handle, which syncs and shuts the
   * appliance down. Kills the process group if that does not finish in time.
   */
  /**
   * End the session. `flushed`: the caller unmounted every filesystem it wrote
   * to (which writes it through to the image), so guestfs's autosync at exit
   * (umount-all, then `sync`, which flushes every drive of the appliance: 6.6 s
   * with 20 drives under TCG, 0.05 s without) would only repeat that.
   */
  async close(timeoutMs = 60_000, options: { flushed?: boolean } = {}): Promise<void> {
    if (this.closedError === undefined) {
      await this.queue;
      if (options.flushed) await this.command('umount-all').then(() => this.command('set-autosync', ['false'])).catch(() => undefined);
      this.closedError = new GuestfsError('guestfish session closed', '', '');
      this.child.stdin?.end('exit\n');
    }
    const timer = setTimeout(() => this.kill(), timeoutMs);
    await this.exited;
    clearTimeout(timer);
  }

  /** Immediate, synchronous: SIGKILL the whole process group (guestfish, qemu, recovery process). */
  kill(): void {
    const pid = this.child.pid;
    if (pid === undefined || this.child.exitCode !== null || this.child.signalCode !== null) {
      live.delete(this);
      return;
    }
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      this.child.kill('SIGKILL');
    }
  }
}

function shorten(line: string): string {
  return line.length > 200 ? line.slice(0, 200) + '…' : line;
}
