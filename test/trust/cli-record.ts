/**
 * Preloaded into every node process of an `npm test` group (scripts/test.mjs
 * puts `--import` of this file into NODE_OPTIONS), so that every ghostprep
 * run of every group is kept for the secrets scan (test/trust/secrets.test.ts),
 * whichever way its test started it (test/helpers/cli.ts, trust-run.ts, execa,
 * spawnSync, a Slurm job): its stdout and stderr, the report and known_hosts
 * files it wrote, and the secrets it was given or generated: private keys it
 * wrote to its state dir, the contents of --key-file/--encrypt-key-file/
 * --luks-key-file files and of --key-env/--encrypt-key-env variables, and
 * password hashes in its profiles and inventory. Written at exit to
 * $GHOSTPREP_TRUST_SHARE/cli-GROUP-PID.json in the format of
 * test/helpers/trust-counts.ts, which the scan merges.
 *
 * Any other node process (the group's mocha) only writes GROUP-ran-PID.json,
 * proving to the scan that the group ran and shared its records.
 * Only node built-ins here: this loads before anything else in every process.
 */
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { isMainThread } from 'node:worker_threads';

const SHARE = process.env.GHOSTPREP_TRUST_SHARE;
const GROUP = process.env.GHOSTPREP_TEST_LANE ?? 'unknown';
/** Outputs beyond this are kept up to it (a 10,000-machine plan prints 50 MB); the record says so. */
const MAX_OUTPUT = 8 * 1024 * 1024;
/** Private keys kept per run: a run of 10,000 machines writes 20,000; a leak is a code path, not one machine. */
const MAX_KEYS = 64;
/** The generated LUKS passphrase's name in a machine's state dir (storage/luks-keys.ts LUKS_KEY_STATE_FILE). */
const LUKS_KEY_NAME = 'luks.key';

const isCli = /dist\/src\/cli\/main\.js$/.test(process.argv[1] ?? '');


/** The value of option `name` in argv (`--name V` or `--name=V`), every occurrence. */
function optionValues(argv: readonly string[], ...names: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    for (const n of names) {
      if (a === n && i + 1 < argv.length) out.push(argv[i + 1]!);
      else if (a.startsWith(`${n}=`)) out.push(a.slice(n.length + 1));
    }
  }
  return out;
}

const CRYPT_HASH = /\$(?:1|2[abxy]|5|6|y|gy|7)\$[^\s'"`,}\]]{8,}/g;

function recordCliRun(share: string): void {
  const started = Date.now();
  const argv = process.argv.slice(2);
  const cwd = process.cwd();
  const label = `ghostprep ${argv.join(' ').slice(0, 200)}`;
  const secrets = new Map<string, string>();
  const addSecret = (what: string, value: string | undefined) => {
    const v = value?.trim();
    if (v && v.length >= 12) secrets.set(v, what);
  };
  const readText = (f: string) => { try { return readFileSync(path.resolve(cwd, f), 'latin1'); } catch { return undefined; } };
  // keys handed in: read now, before the run could remove a variable
  for (const v of optionValues(argv, '--key-env', '--encrypt-key-env')) addSecret(`key in $${v}`, process.env[v]);
  const keyFiles = [...optionValues(argv, '--key-file', '--encrypt-key-file', '--luks-key-file'), ...(process.env.GHOSTPREP_LUKS_KEY_FILE?.split(':').filter(Boolean) ?? [])];
  for (const f of keyFiles) {
    const text = readText(f);
    addSecret(`contents of key file ${f}`, text);
    for (const line of text?.split('\n') ?? []) addSecret(`key in ${f}`, line);
  }
  // password hashes the profiles and inventory put into guests
  const inputs = optionValues(argv, '-p', '--profile', '-i', '--inventory');
  for (const f of inputs.flatMap((p) => filesOf(path.resolve(cwd, p)))) {
    for (const h of readText(f)?.match(CRYPT_HASH) ?? []) addSecret(`password hash in ${f}`, h);
  }

  let stdout = '';
  let stderr = '';
  let truncated = 0;
  const tap = (stream: NodeJS.WriteStream, add: (s: string) => void) => {
    const write = stream.write.bind(stream) as (...a: unknown[]) => boolean;
    stream.write = ((chunk: unknown, ...rest: unknown[]) => {
      add(typeof chunk === 'string' ? chunk : Buffer.isBuffer(chunk) || chunk instanceof Uint8Array ? Buffer.from(chunk).toString('latin1') : String(chunk));
      return write(chunk, ...rest);
    }) as typeof stream.write;
  };
  tap(process.stdout, (s) => { if (stdout.length < MAX_OUTPUT) stdout += s; else truncated++; });
  tap(process.stderr, (s) => { if (stderr.length < MAX_OUTPUT) stderr += s; else truncated++; });

  process.on('exit', () => {
    try {
      const captured = [
        { label: `${label}: stdout`, text: stdout.slice(0, MAX_OUTPUT) },
        { label: `${label}: stderr`, text: stderr.slice(0, MAX_OUTPUT) },
      ];
      for (const f of optionValues(argv, '--report', '--known-hosts')) {
        const text = readText(f);
        if (text !== undefined) captured.push({ label: `${label}: file ${f}`, text: text.slice(0, MAX_OUTPUT) });
      }
      const command = argv.find((a) => !a.startsWith('-') && ['apply', 'deploy'].includes(a));
      if (command) {
        const state = optionValues(argv, '--state').at(-1) ?? process.env.GHOSTPREP_STATE ?? '.ghostprep/state';
        stateKeys(path.resolve(cwd, state), started, addSecret);
      }
      const record = { group: GROUP, pid: process.pid, counts: {}, captured: captured.filter((c) => c.text), secrets: [...secrets], truncated };
      writeFileSync(path.join(share, `cli-${GROUP}-${process.pid}.json`), JSON.stringify(record));
    } catch { /* never change the run's outcome */ }
  });
}

function filesOf(p: string): string[] {
  try {
    const st = statSync(p);
    if (st.isFile()) return [p];
    if (!st.isDirectory()) return [];
    return readdirSync(p).filter((n) => /\.(ya?ml|json)$/.test(n)).map((n) => path.join(p, n));
  } catch { return []; }
}

/** Private keys and generated passwords this run wrote to its state dir (mtime since it started), each base64 line of a PEM body a needle. */
function stateKeys(root: string, since: number, addSecret: (what: string, v: string) => void): void {
  let kept = 0;
  const walk = (d: string, depth: number): void => {
    if (kept >= MAX_KEYS || depth > 3) return;
    let entries;
    try { entries = readdirSync(d, { withFileTypes: true }); } catch { return; }
    for (const e of entries) {
      if (kept >= MAX_KEYS) return;
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p, depth + 1);
      else if (e.isFile() && (e.name.startsWith('password-') || e.name === LUKS_KEY_NAME)) {
        // a generated Windows password or LUKS passphrase: the value, and the Windows one as unattend.xml encodes it
        try {
          if (statSync(p).mtimeMs < since - 2000) continue;
          const value = readFileSync(p, 'utf8').split('\n')[0];
          addSecret(`generated secret ${path.relative(root, p)}`, value);
          for (const element of ['Password', 'AdministratorPassword']) addSecret(`encoded ${path.relative(root, p)}`, Buffer.from(value + element, 'utf16le').toString('base64'));
          kept++;
        } catch { /* removed meanwhile */ }
      } else if (e.isFile() && e.name.endsWith('_key')) {
        try {
          if (statSync(p).mtimeMs < since - 2000) continue;
          const pub = existsSync(p + '.pub') ? readFileSync(p + '.pub', 'utf8') : '';
          for (const line of readFileSync(p, 'utf8').split('\n')) if (line && !line.startsWith('-----') && !pub.includes(line)) addSecret(`private key ${path.relative(root, p)}`, line);
          kept++;
        } catch { /* removed meanwhile */ }
      }
    }
  };
  walk(root, 0);
}

// last: everything above is initialized (a preload that throws would fail every run of the suite)
if (SHARE && isMainThread && existsSync(SHARE)) {
  try {
    if (isCli) recordCliRun(SHARE);
    else process.on('exit', () => {
      try { writeFileSync(path.join(SHARE, `${GROUP}-ran-${process.pid}.json`), JSON.stringify({ group: GROUP, pid: process.pid, counts: {}, captured: [], secrets: [] })); } catch { /* share dir gone */ }
    });
  } catch (err) {
    process.stderr.write(`cli-record: not recording this run: ${(err as Error).message}\n`);
  }
}
