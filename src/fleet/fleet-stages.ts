/**
 * Stage counters of a fleet run (done/total, failures, clocks), advanced by the
 * engine's events; the CLI draws them (src/cli/progress.ts).
 */

export interface StageCounter {
  readonly name: string;
  total: number;
  done: number;
  failed: number;
  /** ms timestamp of the stage's first work (its clock for rate and ETA); undefined: not started. */
  startedAt?: number;
  /** ms timestamp when done reached total. */
  finishedAt?: number;
}

export function stage(name: string, total: number): StageCounter {
  return { name, total, done: 0, failed: 0 };
}

/** Count one finished item; starts the stage's clock when it has none. */
export function tick(s: StageCounter, ok: boolean, now: number): void {
  s.startedAt ??= now;
  s.done++;
  if (!ok) s.failed++;
  if (s.done >= s.total) s.finishedAt ??= now;
}

/**
 * The stages of apply (customize, verify) and deploy (restore first): which
 * counter a fleet event moves. A machine that fails a stage leaves the
 * totals of the later ones, so every stage ends at done == total.
 */
export class FleetStages {
  readonly restore?: StageCounter;
  readonly customize: StageCounter;
  readonly verify: StageCounter;
  private readonly applied = new Set<string>();
  private readonly restoreFailed = new Set<string>();

  constructor(withRestore: boolean, private readonly now: () => number = Date.now, private readonly onChange: (force: boolean) => void = () => {}) {
    if (withRestore) this.restore = stage('restore', 0);
    this.customize = stage('customize', 0);
    this.verify = stage('verify', 0);
  }

  get all(): StageCounter[] {
    return [...(this.restore ? [this.restore] : []), this.customize, this.verify];
  }

  /** `total` machines selected; the first stage's clock starts. */
  planned(total: number): void {
    for (const s of this.all) s.total = total;
    this.all[0]!.startedAt ??= this.now();
    this.onChange(true);
  }

  restored(machine: string, ok: boolean): void {
    if (!this.restore) return;
    tick(this.restore, ok, this.now());
    if (!ok) {
      this.restoreFailed.add(machine);
      this.drop(this.customize);
      this.drop(this.verify);
    }
    this.onChange(false);
  }

  /** An appliance started customizing (its launch counts in the stage's time). */
  customizeStarted(): void {
    this.customize.startedAt ??= this.now();
    this.verify.startedAt ??= this.now();
    this.onChange(true);
  }

  machineApplied(machine: string): void {
    this.customizeStarted();
    this.applied.add(machine);
    tick(this.customize, true, this.now());
    this.onChange(false);
  }

  machineDone(machine: string, ok: boolean): void {
    if (this.restoreFailed.has(machine)) return;
    this.customizeStarted();
    if (this.applied.has(machine)) {
      tick(this.verify, ok, this.now());
    } else {
      // it ended before its changes were written (open, inspect or render failed):
      // counted once, in customize, and it will not be verified
      tick(this.customize, ok, this.now());
      this.drop(this.verify);
    }
    this.onChange(false);
  }

  private drop(s: StageCounter): void {
    s.total = Math.max(s.done, s.total - 1);
    if (s.startedAt !== undefined && s.done >= s.total) s.finishedAt ??= this.now();
  }
}
