/**
 * The pipeline of one case, run in a child process of the fuzzer (forked
 * with an IPC channel): a stage that never returns (an open() on a FIFO, a
 * read of /dev/zero) can then be timed out, unblocked or killed, and the run
 * goes on. (A worker thread could not be stopped inside a native read loop,
 * nor its memory capped.) Each
 * stage's outcome is posted as soon as it ends, with the prototypes checked
 * (and repaired, so that one polluting case does not leak into the next).
 */
import { isMainThread, parentPort } from 'node:worker_threads';
import { apply, plan, validate, type EngineInput } from './engine.js';

export type StageName = 'validate' | 'plan' | 'apply';

export type WorkerMessage =
  | { readonly kind: 'start'; readonly stage: StageName }
  | { readonly kind: 'stage'; readonly stage: StageName; readonly result: unknown; readonly prototypes: string[]; readonly console: string[] }
  | { readonly kind: 'end' };

export interface WorkerRequest { readonly input: EngineInput; readonly stages: readonly StageName[] }

const WATCHED: Array<[string, object]> = [['Object.prototype', Object.prototype], ['Array.prototype', Array.prototype], ['Function.prototype', Function.prototype], ['String.prototype', String.prototype]];

type Shape = Array<Map<PropertyKey, PropertyDescriptor>>;
function shape(): Shape {
  return WATCHED.map(([, o]) => new Map(Reflect.ownKeys(o).map((k) => [k, Object.getOwnPropertyDescriptor(o, k)!])));
}
const pristine = shape();

/** What changed on the watched prototypes since the worker started; put back as it was. */
function checkAndRepair(): string[] {
  const changes: string[] = [];
  WATCHED.forEach(([name, o], i) => {
    const before = pristine[i]!;
    for (const k of Reflect.ownKeys(o)) {
      const d = Object.getOwnPropertyDescriptor(o, k)!;
      const was = before.get(k);
      if (!was) { changes.push(`${name}.${String(k)} added (${typeof d.value})`); delete (o as Record<PropertyKey, unknown>)[k]; }
      else if (was.value !== d.value || was.get !== d.get || was.set !== d.set) { changes.push(`${name}.${String(k)} replaced`); Object.defineProperty(o, k, was); }
    }
    for (const k of before.keys()) if (!Object.prototype.hasOwnProperty.call(o, k)) { changes.push(`${name}.${String(k)} deleted`); Object.defineProperty(o, k, before.get(k)!); }
  });
  if (!Object.isExtensible(Object.prototype)) changes.push('Object.prototype frozen or sealed');
  return changes;
}

let printed: string[] = [];

interface Port { postMessage(m: WorkerMessage): void; on(ev: 'message', fn: (req: WorkerRequest) => void): void }
const port: Port | undefined = !isMainThread && parentPort ? (parentPort as unknown as Port)
  : process.send && process.env.GHOSTPREP_FUZZ_WORKER === '1' ? { postMessage: (m) => process.send!(m), on: (_ev, fn) => process.on('message', fn as (m: unknown) => void) } : undefined;
// only as the fuzzer's child: loaded anywhere else (a mocha given this directory), this module does nothing
if (port) { process.on('disconnect', () => process.exit(0)); serve(port); }

function serve(port: Port): void {
  /**
   * What the library printed on its own (console.*, process.stdout/stderr) is
   * an output too: kept for the secret scan instead of reaching the terminal.
   */
  for (const level of ['log', 'info', 'warn', 'error', 'debug', 'trace', 'dir'] as const) {
    (console as unknown as Record<string, unknown>)[level] = (...args: unknown[]) => { printed.push(args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a) ?? String(a))).join(' ')); };
  }
  for (const stream of [process.stdout, process.stderr]) {
    (stream as unknown as { write: unknown }).write = (chunk: unknown) => { printed.push(String(chunk)); return true; };
  }

  port.on('message', async (req: WorkerRequest) => {
    for (const stage of req.stages) {
      port.postMessage({ kind: 'start', stage } satisfies WorkerMessage);
      let result: unknown;
      printed = [];
      try {
        result = stage === 'validate' ? validate(req.input) : stage === 'plan' ? await plan(req.input) : await apply(req.input);
      } catch (err) {
        // the adapter catches everything: this is a bug of the harness, reported as such
        result = { harnessError: String((err as Error)?.stack ?? err) };
      }
      const prototypes = checkAndRepair();
      // results cross the thread as JSON: what is not plain data is not an output anyway
      port.postMessage({ kind: 'stage', stage, result: JSON.parse(JSON.stringify(result) ?? 'null'), prototypes, console: printed } satisfies WorkerMessage);
      const v = result as { diagnostics?: Array<{ severity: string }>; threw?: string };
      if (stage === 'validate' && (v.threw || v.diagnostics?.some((d) => d.severity === 'error'))) break;
    }
    port.postMessage({ kind: 'end' } satisfies WorkerMessage);
  });
}
