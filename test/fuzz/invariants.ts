/**
 * One case, end to end: build its world, snapshot every tree and every host
 * path next to them, run validate -> plan -> apply in the pipeline child (and the CLI
 * for a sample of cases), then check the product's promises:
 *
 *   machine-atomic          validate ok => each machine ends ok with its files read back as reported,
 *                           or its tree is byte-identical (content, mode, owner, link targets, types)
 *   outside-untouched       no byte outside the targets changes (inputs, the host files links point at)
 *   prototypes-intact       Object/Array/Function/String prototypes unchanged after every stage
 *   no-secret-in-output     no password, hash, private key or site secret in any diagnostic, warning,
 *                           plan text, report, known_hosts, error message, CLI stdout or stderr
 *   validate-never-throws   problems are diagnostics, not exceptions
 *   diagnostics-located     every error diagnostic names a file, line and column, and says what is
 *                           wrong (never a bare "Maximum call stack size exceeded")
 *   no-hang                 every stage ends within its time limit (without help from the harness)
 *   bounded-reads           no stage makes the process grow without bound
 *   forbidden-input-refused an input of a forbidden rule class is refused (by validate, or by the
 *                           preflight for the rules that need the target), never applied
 *   clean-input-applies     the unmutated fleet validates and applies on every fixture distro
 *   extends-complete        a machine that ends ok got the vars of every profile of its extends chain
 */
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { REPO } from '../helpers/rootfs.js';
import { cliCommands, type MachineOutcome, type RunOutcome, type ValidateOutcome } from './engine.js';
import { classesOf, type FuzzCase, type InputMutation } from './generate.js';
import { isKnownOpen, KNOWN_OPEN } from './known-open.js';
import { DEFAULT_LIMITS, type Limits, type Pipeline, type PipelineOutcome } from './pipeline.js';
import { readBack, snapshot, snapshotDiff, type Snapshot } from './tree.js';
import { buildWorld, privateKeySecrets, removeWorld, type World } from './world.js';

export type InvariantName =
  | 'machine-atomic' | 'outside-untouched' | 'prototypes-intact' | 'no-secret-in-output'
  | 'validate-never-throws' | 'diagnostics-located' | 'no-hang' | 'bounded-reads'
  | 'forbidden-input-refused' | 'clean-input-applies' | 'extends-complete';

export interface Violation {
  readonly invariant: InvariantName;
  readonly detail: string;
  /** The known-open rule class this violation is attributed to (known-open.ts), if any. */
  readonly knownOpen?: string;
}

export interface CaseResult {
  readonly violations: readonly Violation[];
  readonly classes: readonly string[];
  readonly validateOk: boolean;
  readonly machinesOk: number;
  readonly ms: number;
}

/**
 * Which forbidden input classes validate alone must refuse (no target
 * needed), and which may wait for the preflight against the target.
 */
function refusal(x: InputMutation): 'validate' | 'preflight' | null {
  switch (x.class) {
    // through a link out of the root: resolved inside the root, as the guest would; it must only not escape
    case 'file-path': return x.path.startsWith('/opt/out/') ? null : /^\/etc\/(hostname|passwd)\//.test(x.path) ? 'preflight' : 'validate';
    // under a regular file of the guest: only the target tells (preflight)
    case 'delete-path': return x.path === '/opt/out/hostfile' ? null : x.path.startsWith('/etc/hostname/') ? 'preflight' : 'validate';
    case 'dup-target': case 'owner-range': return 'preflight';
    default: return 'validate';
  }
}

/** Where a secret shows up in `texts`, if it does (the secret itself is never printed). */
function findSecret(secrets: readonly string[], texts: ReadonlyArray<[string, string]>): string | undefined {
  for (const [where, text] of texts) {
    for (const s of secrets) {
      if (s && text.includes(s)) return `${where} contains a secret (${s.startsWith('$') ? 'password hash' : s.includes('PRIVATE') || s.length > 60 ? 'private key' : s.startsWith('site-secret') ? 'site secret' : 'password'}: ${s.length} chars at offset ${text.indexOf(s)})`;
    }
  }
  return undefined;
}

function located(v: ValidateOutcome): string | undefined {
  const bad = v.diagnostics.find((d) => d.severity === 'error' && (!d.file || !(Number(d.line) >= 1) || !(Number(d.col) >= 1)));
  if (bad) return `error without file:line:col: ${JSON.stringify({ ...bad, message: bad.message.slice(0, 200) })}`;
  // an engine limit is not a message: the input's limit (depth, aliases, size) must be named
  const engine = v.diagnostics.find((d) => /Maximum call stack size exceeded|out of memory|Invalid string length|Invalid array length/i.test(d.message));
  return engine && `an engine error as the message: ${JSON.stringify({ ...engine, message: engine.message.slice(0, 200) })}`;
}

/** Private keys in the state dir and the fixtures' host keys: secrets too. */
function keySecrets(dirs: readonly string[]): string[] {
  const out: string[] = [];
  const walk = (d: string, depth: number): void => {
    let names: string[];
    try { names = readdirSync(d); } catch { return; }
    for (const n of names) {
      const p = path.join(d, n);
      let st;
      try { st = lstatSync(p); } catch { continue; }
      if (st.isDirectory() && depth < 6) walk(p, depth + 1);
      else if (st.isFile() && st.size < 16384) {
        const t = readFileSync(p, 'utf8');
        if (t.includes('PRIVATE KEY-----')) out.push(...privateKeySecrets(t, existsSync(p + '.pub') ? readFileSync(p + '.pub', 'utf8') : ''));
      }
    }
  };
  for (const d of dirs) walk(d, 0);
  return out;
}

export interface CaseContext {
  readonly pipeline: Pipeline;
  /** Directory for this case (created by the caller, removed here unless keep). */
  readonly dir: string;
  readonly scratch: string;
  readonly keep?: boolean;
  readonly strict?: boolean;
  readonly limits?: Limits;
}

export async function runCase(c: FuzzCase, ctx: CaseContext): Promise<CaseResult> {
  const started = Date.now();
  const classes = classesOf(c);
  const world = buildWorld(c, ctx.dir, ctx.scratch);
  const violations: Violation[] = [];
  const add = (invariant: InvariantName, detail: string): void => {
    const known = ctx.strict ? undefined : isKnownOpen(classes, invariant);
    violations.push({ invariant, detail, ...(known && { knownOpen: known }) });
  };
  let validateOk = false;
  let machinesOk = 0;
  try {
    const roots = [...new Set(world.machines.map((m) => m.root))];
    const trees = new Map<string, Snapshot>(roots.map((r) => [r, snapshot(r)]));
    const sentinels = new Map<string, Snapshot>(world.sentinels.map((s) => [s, snapshot(s)]));
    const secrets = [...world.secrets, ...keySecrets(roots.map((r) => path.join(r, 'etc/ssh')))];

    // a class known to hang is given a short leash: it costs the fixed budget seconds, not minutes
    const base = ctx.limits ?? DEFAULT_LIMITS;
    const knownHang = !ctx.strict && classes.some((k) => KNOWN_OPEN[k]?.includes('no-hang'));
    const limits: Limits = knownHang ? { ...base, stageMs: { validate: 1500, plan: 3000, apply: 5000 } } : base;
    const out = await ctx.pipeline.run(world.input, ['validate', 'plan', 'apply'], world.dir, limits);
    // Deeply nested input after deeply nested input in one thread has aborted the whole process
    // (V8: "RegExpCompiler Allocation failed"): the worker that saw one is not given another.
    if (classes.some((k) => k === 'deep-nesting' || k === 'yaml-bomb')) await ctx.pipeline.recycle();
    const v = out.stages.validate?.result as ValidateOutcome | undefined;
    const p = out.stages.plan?.result as RunOutcome | undefined;
    const a = out.stages.apply?.result as RunOutcome | undefined;
    checkStages(out, add);
    if (v?.threw) add('validate-never-throws', v.threw.slice(0, 300));
    const unlocated = v && located(v);
    if (unlocated) add('diagnostics-located', unlocated);
    validateOk = Boolean(v && !v.threw && !v.diagnostics.some((d) => d.severity === 'error'));

    // secrets: after apply, the host keys ghostprep generated are secrets too
    secrets.push(...keySecrets([world.input.state]));
    const texts: Array<[string, string]> = [];
    if (v) texts.push(['validate diagnostics', JSON.stringify(v.diagnostics)], ['validate exception', v.threw ?? '']);
    p?.texts.forEach((t, i) => texts.push([`plan output ${i}`, t]));
    a?.texts.forEach((t, i) => texts.push([`apply output ${i}`, t]));
    for (const [stage, s] of Object.entries(out.stages)) s?.console.forEach((t, i) => texts.push([`${stage} console output ${i}`, t]));
    if (existsSync(world.input.knownHosts)) texts.push(['known_hosts', readFileSync(world.input.knownHosts, 'utf8')]);

    // each machine: ok and read back, or untouched
    const finished = a && !out.hung && !out.unbounded && !out.crashed;
    const byName = new Map<string, MachineOutcome>((a?.machines ?? []).map((m) => [m.name, m]));
    if (validateOk && finished) {
      for (const m of world.machines) {
        const o = byName.get(m.name);
        if (o?.ok) {
          machinesOk++;
          const problem = readBackProblem(m.root, o, world);
          if (problem) add(problem.startsWith('/etc/fz-chain:') ? 'extends-complete' : 'machine-atomic', `${m.name} ended ok but ${problem}`);
        }
      }
      for (const r of roots) {
        const mine = world.machines.filter((m) => m.root === r);
        if (mine.some((m) => byName.get(m.name)?.ok)) continue;
        const diff = snapshotDiff(trees.get(r)!, snapshot(r));
        if (diff.length) add('machine-atomic', `${mine.map((m) => m.name).join('+')} failed (${mine.map((m) => byName.get(m.name)?.error ?? a.threw ?? 'not run').join('; ').slice(0, 240)}) but its tree changed: ${diff.join('; ')}`);
      }
    }

    // the rule classes' verdicts
    for (const x of c.input) {
      const when = refusal(x);
      if (!when || !validateOk) continue;
      if (when === 'validate') add('forbidden-input-refused', `validate accepted ${x.class} ${JSON.stringify(x)}`);
      else if (finished) {
        const oks = x.class === 'dup-target' ? ['fz0', 'fz1'].filter((n) => byName.get(n)?.ok) : world.machines.every((m) => byName.get(m.name)?.ok) ? ['all'] : [];
        if (oks.length) add('forbidden-input-refused', `${x.class} ${JSON.stringify(x)} applied (${oks.join(', ')} ok)`);
      }
    }
    if (!c.input.length && !c.trees.length) {
      if (!validateOk) add('clean-input-applies', `validate refused a clean fleet: ${v?.threw ?? JSON.stringify(v?.diagnostics.filter((d) => d.severity === 'error').slice(0, 3))}`.slice(0, 600));
      else if (finished) for (const m of world.machines) if (!byName.get(m.name)?.ok) add('clean-input-applies', `${m.name} (${c.fixtures[Number(m.name.slice(2))] ?? 'debian12'}) failed: ${byName.get(m.name)?.error ?? a?.threw ?? 'not run'}`);
    }

    // the CLI, for a sample: its stdout and stderr go through the same scan
    if (c.cli && !out.hung && !out.unbounded && !out.crashed) texts.push(...runCli(world, add));
    const leak = findSecret(secrets, texts);
    if (leak) add('no-secret-in-output', leak);

    for (const [s, before] of sentinels) {
      const diff = snapshotDiff(before, snapshot(s));
      if (diff.length) add('outside-untouched', `${path.relative(world.dir, s)}: ${diff.join('; ')}`);
    }
  } finally {
    if (!ctx.keep) removeWorld(world);
  }
  return { violations, classes, validateOk, machinesOk, ms: Date.now() - started };
}

function checkStages(out: PipelineOutcome, add: (i: InvariantName, d: string) => void): void {
  for (const [stage, s] of Object.entries(out.stages)) {
    if (s?.prototypes.length) add('prototypes-intact', `after ${stage}: ${s.prototypes.join(', ')}`);
    const harness = (s?.result as { harnessError?: string } | undefined)?.harnessError;
    if (harness) add('validate-never-throws', `${stage} threw through the adapter: ${harness.slice(0, 300)}`);
  }
  if (out.hung) add('no-hang', `${out.hung.stage} did not end within its time limit (${out.hung.limitMs / 1000} s)${out.hung.unblocked ? ' (it ended once the harness opened the FIFOs it waited on)' : ''}`);
  if (out.unbounded) add('bounded-reads', `${out.unbounded.stage}: ${out.unbounded.detail}`);
  if (out.crashed) add('validate-never-throws', `${out.crashed.stage ?? 'a stage'} crashed the worker: ${out.crashed.detail}`);
}

function readBackProblem(root: string, o: MachineOutcome, world: World): string | undefined {
  let real: string;
  try { real = realpathSync(o.target); } catch { return `its target ${o.target} does not exist`; }
  if (real !== realpathSync(root)) return `it was applied to ${o.target}, not to its own target ${root}`;
  for (const w of o.writes) {
    const r = readBack(root, w.path);
    if ('problem' in r) return `${w.path} (reported written) ${r.problem}`;
    if (w.sha256 && r.sha256 !== w.sha256) return `${w.path} does not hold what the report says was written`;
  }
  for (const d of o.deletes) if (readBack(root, d).hasOwnProperty('sha256')) return `${d} (reported deleted) is still there`;
  const chain = readBack(root, '/etc/fz-chain');
  if ('content' in chain && chain.content.toString() !== world.chainContent) return `/etc/fz-chain: holds ${JSON.stringify(chain.content.toString())}, expected ${JSON.stringify(world.chainContent)}`;
  return undefined;
}

const CLI = path.join(REPO, 'dist/src/cli/main.js');

function runCli(world: World, add: (i: InvariantName, d: string) => void): Array<[string, string]> {
  const texts: Array<[string, string]> = [];
  const report = path.join(world.dir, 'out/report.json');
  for (const args of cliCommands(world.input, report)) {
    const r = spawnSync(process.execPath, [CLI, ...args], { cwd: world.dir, encoding: 'utf8', timeout: 90_000, killSignal: 'SIGKILL', env: { ...process.env, NODE_OPTIONS: '' }, maxBuffer: 64 * 1024 * 1024 });
    const name = `ghostprep ${args.filter((x) => !x.startsWith('/')).join(' ')}`;
    if (r.error || r.signal) add('no-hang', `${name}: ${r.error?.message ?? `killed by ${r.signal}`}`);
    texts.push([`${name} stdout`, r.stdout ?? ''], [`${name} stderr`, r.stderr ?? '']);
  }
  if (existsSync(report)) texts.push(['CLI report.json', readFileSync(report, 'utf8')]);
  return texts;
}
