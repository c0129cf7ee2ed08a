/**
 * Host files a profile names (`files[].source`, `files[].template`,
 * `site.secretFile`) are read as regular files under a size cap, without
 * blocking: a real FIFO with no writer, /dev/zero, a directory and an oversize
 * file are errors located at the profile's value (file:line:col and JSON
 * path), and validate returns instead of waiting or reading without end.
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadFleet, validateFleet } from '../../src/fleet/validate-fleet.js';
import { renderMachine } from '../../src/fleet/prepare.js';
import { readSiteSecret } from '../../src/identity/resolve.js';
import type { Diagnostic } from '../../src/core/diagnostic.js';
import { fileContent, HostFileProblem } from '../../src/template/files.js';
import { HOST_FILE_MAX_BYTES } from '../../src/util/host-file.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const CASE = path.join(REPO, 'fixtures', 'bad', 'bad-cidr');
const FILES_LINE = '  - {path: /etc/motd, template: motd.hbs, mode: "0644"}';

describe('host files named by a profile', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'ghostprep-host-files-'));
    writeFileSync(path.join(dir, 'inventory.yaml'), readFileSync(path.join(CASE, 'inventory.yaml'), 'utf8').replace('10.0.0.300/24', '10.0.0.12/24'));
    mkdirSync(path.join(dir, 'templates'));
    copyFileSync(path.join(REPO, 'templates', 'motd.hbs'), path.join(dir, 'templates', 'motd.hbs'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** The profile with its first `files` entry replaced by `entry`; returns validate's errors. */
  function validateWith(entry: string, edit: (profile: string) => string = (p) => p): Diagnostic[] {
    const profile = readFileSync(path.join(CASE, 'profile.yaml'), 'utf8');
    expect(profile).to.include(FILES_LINE);
    writeFileSync(path.join(dir, 'profile.yaml'), edit(profile.replace(FILES_LINE, `  - ${entry}`)));
    return validateFleet([path.join(dir, 'profile.yaml')], path.join(dir, 'inventory.yaml')).diagnostics.filter((d) => d.severity === 'error');
  }

  /** The one error at the entry's `key:` value (line 38 of the profile, the value's column). */
  function expectAt(diags: Diagnostic[], entry: string, key: 'source' | 'template', message: string): void {
    const col = 5 + entry.indexOf(`${key}: `) + key.length + 2;
    const hit = diags.find((d) => d.path === `/files/0/${key}`);
    expect(hit, JSON.stringify(diags)).to.not.equal(undefined);
    expect(hit!.file).to.equal(path.join(dir, 'profile.yaml'));
    expect([hit!.line, hit!.col]).to.deep.equal([38, col]);
    expect(hit!.message).to.include(message);
  }

  it('a FIFO without a writer as source: an error at the value, no wait', () => {
    execFileSync('mkfifo', [path.join(dir, 'pipe')]);
    const entry = '{path: /etc/motd, source: pipe, mode: "0644"}';
    expectAt(validateWith(entry), entry, 'source', 'source file is a FIFO (named pipe), not a regular file');
  });

  it('/dev/zero as source: an error at the value, no endless read', () => {
    const entry = '{path: /etc/motd, source: /dev/zero, mode: "0644"}';
    const before = process.memoryUsage().rss;
    expectAt(validateWith(entry), entry, 'source', '"/dev/zero": source file is a character device, not a regular file');
    expect(process.memoryUsage().rss - before).to.be.below(256 * 1024 * 1024);
  });

  it('a directory as source', () => {
    mkdirSync(path.join(dir, 'files'));
    const entry = '{path: /etc/motd, source: files, mode: "0644"}';
    expectAt(validateWith(entry), entry, 'source', 'source file is a directory');
  });

  it('a source larger than the cap (a sparse file: its size alone refuses it)', () => {
    writeFileSync(path.join(dir, 'huge.img'), '');
    truncateSync(path.join(dir, 'huge.img'), HOST_FILE_MAX_BYTES + 1);
    const entry = '{path: /etc/motd, source: huge.img, mode: "0644"}';
    expectAt(validateWith(entry), entry, 'source', `is ${HOST_FILE_MAX_BYTES + 1} bytes, more than the limit of ${HOST_FILE_MAX_BYTES}`);
  });

  it('a FIFO, /dev/zero and a directory as template', () => {
    execFileSync('mkfifo', [path.join(dir, 'templates', 'pipe.hbs')]);
    mkdirSync(path.join(dir, 'templates', 'dir.hbs'));
    for (const [name, why] of [['pipe.hbs', 'template is a FIFO'], ['/dev/zero', 'template is a character device'], ['dir.hbs', 'template is a directory']] as const) {
      const entry = `{path: /etc/motd, template: ${name}, mode: "0644"}`;
      expectAt(validateWith(entry), entry, 'template', why);
    }
  });

  it('a regular source file is read once per run, whatever the number of machines', () => {
    writeFileSync(path.join(dir, 'motd.txt'), 'hello\n');
    const entry = '{path: /etc/motd, source: motd.txt, mode: "0644"}';
    expect(validateWith(entry)).to.deep.equal([]);
    const fleet = loadFleet([path.join(dir, 'profile.yaml')], path.join(dir, 'inventory.yaml'));
    const [a, b] = fleet.machines.map((m) => renderMachine(m, undefined, undefined, false));
    const f = a!.profile.files![0]!;
    expect(fileContent(a!, f, 0).toString()).to.equal('hello\n');
    writeFileSync(path.join(dir, 'motd.txt'), 'changed\n');
    expect(fileContent(b!, b!.profile.files![0]!, 0).toString(), 'the content read first').to.equal('hello\n');
  });

  it('apply/plan get the located error too (HostFileProblem carries the diagnostic)', () => {
    execFileSync('mkfifo', [path.join(dir, 'pipe2')]);
    validateWith('{path: /etc/motd, source: pipe2, mode: "0644"}');
    const fleet = loadFleet([path.join(dir, 'profile.yaml')], path.join(dir, 'inventory.yaml'));
    const r = renderMachine(fleet.machines[0]!, undefined, undefined, false);
    let caught: unknown;
    try { fileContent(r, r.profile.files![0]!, 0); } catch (err) { caught = err; }
    expect(caught).to.be.instanceOf(HostFileProblem);
    expect((caught as HostFileProblem).message).to.match(/profile\.yaml:38:31: error: \/files\/0\/source: "pipe2" \(.*\): source file is a FIFO/);
  });

  it('a site secret file that is a FIFO or a device gives no secret and says why (never its contents)', () => {
    execFileSync('mkfifo', [path.join(dir, 'secret.pipe')]);
    for (const [file, why] of [['secret.pipe', 'is a FIFO'], ['/dev/zero', 'is a character device'], ['templates', 'is a directory']] as const) {
      const diags = validateWith('{path: /etc/motd, template: motd.hbs, mode: "0644"}', (p) => p.replace('machineId: generate', 'machineId: derive').replace('  domain: lab.example.org', `  domain: lab.example.org\n  secretFile: ${file}`));
      expect(diags.map((d) => d.message).join('\n')).to.include('machineId: derive needs a site secret');
      const fleet = loadFleet([path.join(dir, 'profile.yaml')], path.join(dir, 'inventory.yaml'));
      const got = readSiteSecret(renderMachine(fleet.machines[0]!, undefined, undefined, false));
      expect(got.secret).to.equal(undefined);
      expect(got.problem).to.include(`site.secretFile "${file}": site secret file ${why}`);
    }
  });
});
