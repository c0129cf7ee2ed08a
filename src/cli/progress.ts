/**
 * A one-line, per-stage progress display on stderr (restore / customize /
 * verify: done/total, rate, ETA), redrawn in place on a TTY. Only when a
 * human is watching: never with --json, -q or --no-progress, never when
 * stderr is not a TTY. JSON-lines events are not affected.
 *
 * The formatting and ETA are pure functions of the counters and a clock
 * (unit-tested); the Progress class only redraws.
 */
import type { GlobalOptions } from './common.js';
import { FleetStages, tick, type StageCounter } from '../fleet/fleet-stages.js';

/** 4s, 1m05s, 2h03m. */
export function formatDuration(ms: number): string {
  const sec = Math.max(0, Math.round(ms / 1000));
  if (sec < 60) return `${sec}s`;
  const min = Math.floor(sec / 60);
  if (min < 60) return `${min}m${String(sec % 60).padStart(2, '0')}s`;
  return `${Math.floor(min / 60)}h${String(min % 60).padStart(2, '0')}m`;
}

/** Items per second since the stage started; undefined before the first item. */
export function rate(s: StageCounter, now: number): number | undefined {
  if (s.startedAt === undefined || s.done === 0) return undefined;
  const elapsed = ((s.finishedAt ?? now) - s.startedAt) / 1000;
  return elapsed > 0 ? s.done / elapsed : undefined;
}

/**
 * Time left at the stage's average rate so far (work comes in batches, so
 * the average over the whole stage is steadier than a recent window).
 * 0 when done; undefined before the first item.
 */
export function eta(s: StageCounter, now: number): number | undefined {
  if (s.done >= s.total) return 0;
  const r = rate(s, now);
  return r === undefined ? undefined : ((s.total - s.done) / r) * 1000;
}

/** 12.3/s, 0.71/s, 4.2/min for slow stages. */
export function formatRate(perSecond: number): string {
  if (perSecond >= 10) return `${perSecond.toFixed(0)}/s`;
  if (perSecond >= 0.1) return `${perSecond.toFixed(2)}/s`;
  return `${(perSecond * 60).toFixed(1)}/min`;
}

/** "customize 37/100 (1 failed) 0.71/s ETA 1m29s"; "restore 100/100 in 2s" (finished); "verify 0/100". */
export function formatStage(s: StageCounter, now: number): string {
  const parts = [`${s.name} ${s.done}/${s.total}`];
  if (s.failed) parts.push(`(${s.failed} failed)`);
  if (s.startedAt !== undefined && s.done >= s.total) {
    parts.push(`in ${formatDuration((s.finishedAt ?? now) - s.startedAt)}`);
  } else if (s.startedAt !== undefined) {
    const r = rate(s, now);
    const left = eta(s, now);
    parts.push(r === undefined ? '…' : formatRate(r));
    if (left !== undefined) parts.push(`ETA ${formatDuration(left)}`);
  }
  return parts.join(' ');
}

/** All stages and the elapsed time on one line, cut to the terminal width. */
export function formatLine(stages: readonly StageCounter[], now: number, startedAt: number, columns = 80): string {
  const line = `[${formatDuration(now - startedAt)}] ` + stages.map((s) => formatStage(s, now)).join(' | ');
  const width = Math.max(20, columns - 1);
  return line.length > width ? line.slice(0, width - 1) + '…' : line;
}

/** Whether to show the display: a TTY on stderr, and none of --json, -q, --no-progress. */
export function progressWanted(g: GlobalOptions, stream: { isTTY?: boolean } = process.stderr): boolean {
  return !g.json && !g.quiet && g.progress !== false && stream.isTTY === true;
}

interface ProgressStream {
  write(text: string): boolean;
  readonly columns?: number;
}

/** The live display: redraws the status line at most every `intervalMs` and on a timer (for the ETA). */
export class Progress {
  readonly stages: Map<string, StageCounter>;
  private readonly startedAt: number;
  private timer: NodeJS.Timeout | undefined;
  private shown = false;
  private lastDraw = 0;

  constructor(
    stages: readonly StageCounter[],
    private readonly stream: ProgressStream = process.stderr,
    private readonly now: () => number = Date.now,
    private readonly intervalMs = 250,
  ) {
    this.stages = new Map(stages.map((s) => [s.name, s]));
    this.startedAt = now();
    this.timer = setInterval(() => this.draw(), 1000);
    this.timer.unref();
    this.draw();
  }

  /** Start a stage's clock (work began, nothing finished yet). */
  start(name: string): void {
    const s = this.stages.get(name);
    if (s && s.startedAt === undefined) s.startedAt = this.now();
    this.draw(true);
  }

  /** Redraw now (`force`) or when the last draw is older than the interval. */
  update(force = false): void {
    this.draw(force);
  }

  tick(name: string, ok = true): void {
    const s = this.stages.get(name);
    if (!s) return;
    tick(s, ok, this.now());
    this.draw(s.done >= s.total);
  }

  /** A log line above the status line. */
  log(line: string): void {
    this.clear();
    this.stream.write(line + '\n');
    this.draw(true);
  }

  /** Remove the status line for good (before the final summary). */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.clear();
  }

  private clear(): void {
    if (this.shown) this.stream.write('\r\x1b[K');
    this.shown = false;
  }

  private draw(force = false): void {
    if (!this.timer) return;
    const t = this.now();
    if (!force && this.shown && t - this.lastDraw < this.intervalMs) return;
    this.lastDraw = t;
    this.stream.write('\r\x1b[K' + formatLine([...this.stages.values()], t, this.startedAt, this.stream.columns || 80));
    this.shown = true;
  }
}

/** Stage counters for a fleet command, and the live display when progressWanted(g). */
export function fleetProgress(g: GlobalOptions, withRestore: boolean): { stages: FleetStages; display?: Progress } {
  if (!progressWanted(g)) return { stages: new FleetStages(withRestore) };
  let display: Progress | undefined;
  const stages = new FleetStages(withRestore, Date.now, (force) => display?.update(force));
  display = new Progress(stages.all);
  return { stages, display };
}
