/**
 * The bad-input corpus: fixtures/bad/CASE/ holds the input files of one
 * mistake (profiles, inventory, templates) and expected.yaml, the errors that
 * `validate` must report for it (file, line, col, message substring). Adding
 * a case is adding a directory; nothing here lists the cases.
 *
 * expected.yaml:
 *   description: what is wrong
 *   args: {profiles: [profile.yaml], inventory: inventory.yaml}   # relative to the case dir
 *   pending: "why"        # optional: a known validator defect; the case is skipped
 *   secrets: ["…"]        # optional: text of the input (a password, a private key line) that no
 *                         # diagnostic, nor the output of `validate` and `plan`, may contain
 *   errors:               # each must be reported (others may be too); at least one
 *     - {file: profile.yaml, line: 5, col: 11, message: "not a valid RFC 1123"}
 *
 * A pending case that starts passing fails, so that its `pending` is removed
 * with the fix and the case guards it from then on.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { validateFleet } from '../../src/fleet/validate-fleet.js';
import type { Diagnostic } from '../../src/core/diagnostic.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const CORPUS = path.join(REPO, 'fixtures', 'bad');
const CLI = path.join(REPO, 'dist', 'src', 'cli', 'main.js');
const MIN_CASES = 40;

interface ExpectedError { file: string; line?: number; col?: number; message: string }
interface Expected {
  description: string;
  args: { profiles: string[]; inventory?: string };
  pending?: string;
  secrets?: string[];
  errors: ExpectedError[];
}
interface Case { name: string; dir: string; expected: Expected }

function loadCase(name: string): Case {
  const dir = path.join(CORPUS, name);
  const expected = parseYaml(readFileSync(path.join(dir, 'expected.yaml'), 'utf8')) as Expected;
  return { name, dir, expected };
}

function listCases(): Case[] {
  if (!existsSync(CORPUS)) return [];
  return readdirSync(CORPUS, { withFileTypes: true })
    .filter((e) => e.isDirectory() && existsSync(path.join(CORPUS, e.name, 'expected.yaml')))
    .map((e) => e.name).sort().map(loadCase);
}

function checkShape(c: Case): void {
  const e = c.expected;
  expect(e, `${c.name}/expected.yaml`).to.be.an('object');
  expect(e.description, `${c.name}: description`).to.be.a('string').and.not.empty;
  expect(e.args?.profiles, `${c.name}: args.profiles`).to.be.an('array').and.not.empty;
  expect(e.errors, `${c.name}: errors`).to.be.an('array').and.not.empty;
  for (const x of e.errors) {
    expect(x.file, `${c.name}: errors[].file`).to.be.a('string');
    expect(x.message, `${c.name}: errors[].message`).to.be.a('string').and.not.empty;
  }
}

function run(c: Case): Diagnostic[] {
  const { profiles, inventory } = c.expected.args;
  return validateFleet(profiles.map((p) => path.join(c.dir, p)), inventory ? path.join(c.dir, inventory) : undefined).diagnostics;
}

function show(c: Case, d: Diagnostic): string {
  const file = d.file ? path.relative(c.dir, d.file) : '-';
  return `${file}:${d.line ?? '-'}:${d.col ?? '-'}: ${d.severity}: ${d.path}: ${d.message}`;
}

function matches(c: Case, d: Diagnostic, x: ExpectedError): boolean {
  return d.severity === 'error'
    && d.file !== undefined && path.relative(c.dir, d.file) === x.file
    && (x.line === undefined || d.line === x.line)
    && (x.col === undefined || d.col === x.col)
    && d.message.includes(x.message);
}

/** What is wrong with the diagnostics for this case, or [] when they are as expected. */
function problems(c: Case, diags: readonly Diagnostic[]): string[] {
  const out: string[] = [];
  if (!diags.some((d) => d.severity === 'error')) out.push('no error reported');
  for (const secret of c.expected.secrets ?? []) if (leaks(JSON.stringify(diags), secret)) out.push(`a diagnostic shows the secret ${JSON.stringify(secret.slice(0, 8) + '…')}`);
  for (const x of c.expected.errors) {
    if (!diags.some((d) => matches(c, d, x))) out.push(`missing: ${x.file}:${x.line ?? '*'}:${x.col ?? '*'}: ${JSON.stringify(x.message)}`);
  }
  return out;
}

/** Whether output holds a secret as written or JSON-escaped. */
function leaks(output: string, secret: string): boolean {
  return output.includes(secret) || output.includes(JSON.stringify(secret).slice(1, -1));
}

const cases = listCases();

describe('bad-input corpus (fixtures/bad)', () => {
  it(`has at least ${MIN_CASES} cases, each with a well-formed expected.yaml`, () => {
    expect(cases.length).to.be.at.least(MIN_CASES);
    for (const c of cases) checkShape(c);
  });

  for (const c of cases) {
    const title = `${c.name}: ${c.expected.description}${c.expected.pending ? ` [PENDING: ${c.expected.pending}]` : ''}`;
    it(title, function () {
      checkShape(c);
      const diags = run(c);
      const wrong = problems(c, diags);
      if (c.expected.pending) {
        if (!wrong.length) throw new Error(`${c.name} passes now: remove "pending" from its expected.yaml`);
        this.skip();
      }
      if (wrong.length) {
        throw new Error(`${c.name}:\n  ${wrong.join('\n  ')}\nreported:\n  ${diags.map((d) => show(c, d)).join('\n  ') || '(nothing)'}`);
      }
    });
  }
});

describe('bad-input corpus through the CLI', () => {
  const execFileP = promisify(execFile);
  /** Run `ghostprep validate` in the case dir (so file names are as in expected.yaml). */
  async function validateCli(c: Case, format: string, command = 'validate'): Promise<{ code: number; stdout: string; stderr: string }> {
    const args = [CLI, command, ...c.expected.args.profiles.flatMap((p) => ['-p', p])];
    if (c.expected.args.inventory) args.push('-i', c.expected.args.inventory);
    if (command === 'validate') args.push('--format', format);
    try {
      const { stdout, stderr } = await execFileP(process.execPath, args, { cwd: c.dir });
      return { code: 0, stdout, stderr };
    } catch (err) {
      const e = err as { code?: number; stdout?: string; stderr?: string };
      if (typeof e.code !== 'number') throw err;
      return { code: e.code, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
    }
  }

  it('--format github prints ::error file=…,line=…,col=…:: annotations and exits 1', async () => {
    const c = loadCase('enum-machine-id');
    const x = c.expected.errors[0]!;
    const { code, stdout, stderr } = await validateCli(c, 'github');
    expect(code).to.equal(1);
    const lines = (stdout + stderr).split('\n').filter((l) => l.startsWith('::'));
    expect(lines, stdout + stderr).to.include(`::error file=${x.file},line=${x.line},col=${x.col}::/machineId: ${x.message}`);
    for (const l of lines) expect(l).to.match(/^::(error|warning) file=[^,:]+,line=\d+,col=\d+::\S/);
  });

  it('--format github keeps one annotation per line when a value holds a newline', async () => {
    const c = loadCase('hostname-template-newline');
    const { code, stdout, stderr } = await validateCli(c, 'github');
    expect(code).to.equal(1);
    const lines = (stdout + stderr).split('\n').filter((l) => l.startsWith('::'));
    // the rendered host name carries "\n" (shown JSON-escaped), never a raw line break
    expect(lines.filter((l) => l.includes('white space'))).to.have.length(2);
    for (const l of lines) expect(l).to.match(/^::error file=profile.yaml,line=12,col=11::/);
  });

  it('--format json prints {ok: false, diagnostics} on stdout with file, line and col', async () => {
    const c = loadCase('duplicate-mac');
    const x = c.expected.errors[0]!;
    const { code, stdout } = await validateCli(c, 'json');
    expect(code).to.equal(1);
    const report = JSON.parse(stdout) as { ok: boolean; diagnostics: Diagnostic[] };
    expect(report.ok).to.equal(false);
    const found = report.diagnostics.find((d) => d.file === x.file && d.line === x.line && d.col === x.col && d.message.includes(x.message));
    expect(found, stdout).to.not.equal(undefined);
    expect(found).to.include({ severity: 'error', path: '/machines/1/mac' });
  });

  for (const c of cases.filter((x) => x.expected.secrets?.length && !x.expected.pending)) {
    it(`${c.name}: validate (text, json) and plan print none of its secrets`, async () => {
      const runs = [['validate', 'text'], ['validate', 'json'], ...(c.expected.args.inventory ? [['plan', 'text']] : [])] as const;
      for (const [command, format] of runs) {
        const { code, stdout, stderr } = await validateCli(c, format, command);
        expect(code, `${command} --format ${format}`).to.not.equal(0);
        for (const secret of c.expected.secrets!) expect(leaks(stdout + stderr, secret), `${command} --format ${format} shows ${JSON.stringify(secret.slice(0, 8) + '…')}`).to.equal(false);
      }
    });
  }
});
