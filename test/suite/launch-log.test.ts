/**
 * The launch count of the test runner (test/helpers/launch-log.ts): which
 * processes count as what, and that a real preloaded node process logs the
 * spawns it makes, through every child_process function, named by group and
 * spec file.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { classify, commandOf, GuestfishScript } from '../helpers/launch-log.js';
import { REPO } from '../helpers/rootfs.js';

describe('launch count (GHOSTPREP_LAUNCH_LOG)', () => {
  it('classifies the costly tools, through sh -c and wrappers, and ignores the cheap ones', () => {
    const kind = (file: string, args: string[]) => { const c = commandOf(file, args); return classify(c.tool, c.args); };
    expect(kind('/usr/bin/guestfish', ['--ro', '-a', 'x.qcow2', '-a', 'y.qcow2', 'run', ':', 'list-filesystems'])).to.deep.equal({ kind: 'appliance', tool: 'guestfish', drives: 2 });
    expect(kind('guestfish', ['-a', 'x', '-i', 'cat', '/etc/hostname'])).to.deep.include({ kind: 'appliance', drives: 1 });
    expect(kind('guestfish', ['--keys-from-stdin']), 'commands on stdin: counted at `run`').to.equal(undefined);
    expect(kind('guestfish', ['--version'])).to.equal(undefined);
    expect(kind('virt-customize', ['-a', 'x'])).to.deep.include({ kind: 'appliance' });
    expect(kind('/usr/bin/qemu-system-x86_64', ['-m', '512'])).to.deep.include({ kind: 'vm' });
    expect(kind('sh', ['-c', 'LC_ALL=C exec mkfs.ext4 -F -q img'])).to.deep.include({ kind: 'mkfs', tool: 'mkfs.ext4' });
    expect(kind('strace', ['-f', '-o', '/tmp/t', 'debootstrap', 'bookworm', '/x'])).to.deep.include({ kind: 'debootstrap' });
    expect(kind('qemu-img', ['create', '-f', 'qcow2', 'x', '1G'])).to.deep.include({ kind: 'qemu-img' });
    expect(kind('qemu-img', ['info', 'x'])).to.equal(undefined);
    expect(kind(process.execPath, [path.join(REPO, 'dist/src/cli/main.js'), 'plan'])).to.deep.include({ kind: 'ghostprep' });
    for (const cheap of ['ssh-keygen', 'cp', 'node', 'ps', 'hivexget']) expect(kind(cheap, ['x']), cheap).to.equal(undefined);
  });

  it('counts the launches of a guestfish script with the drives added before each', () => {
    const s = new GuestfishScript();
    expect(s.feed('-add-drive "a" format:qcow2 readonly:false\necho GPx:1\n-GPx_1\n-add-drive "b" format:raw readonly:true\n')).to.deep.equal([]);
    expect(s.feed('-run\necho GPx:3\n-mount "/dev/sda1" "/"\n')).to.deep.equal([2]);
    expect(s.feed('add c\nlaunch\n')).to.deep.equal([3]);
  });

  it('a preloaded process logs its spawns (spawn, spawnSync, execFile, execSync, execa with input), named by group and spec', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ghostprep-launch-log-'));
    try {
      const log = path.join(dir, 'launches.jsonl');
      const bin = path.join(dir, 'bin');
      const script = path.join(dir, 'child.mjs');
      // stand-ins named like the real tools: what is counted is the spawn, not what the tool does
      spawnSync('mkdir', [bin]);
      writeFileSync(path.join(bin, 'guestfish'), '#!/bin/sh\ncat >/dev/null\n', { mode: 0o755 });
      for (const t of ['qemu-system-x86_64', 'mkfs.ext4']) writeFileSync(path.join(bin, t), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
      writeFileSync(script, `import { spawn, spawnSync, execFile, execSync } from 'node:child_process';
const g = spawn('guestfish', ['--keys-from-stdin'], { stdio: ['pipe', 'ignore', 'ignore'] });
g.stdin.write('-add-drive "a" format:qcow2 readonly:false\\n-add-drive "b" format:qcow2 readonly:false\\n');
g.stdin.end('-run\\n');
await new Promise((r) => g.on('close', r));
spawnSync('qemu-system-x86_64', ['-m', '64'], { input: '' });
await new Promise((r) => execFile('mkfs.ext4', ['-q', 'x'], r));
execSync('mkfs.ext4 -F y </dev/null');
spawnSync('true');
const { execa } = await import(${JSON.stringify(import.meta.resolve('execa'))});
await execa('guestfish', ['--keys-from-stdin'], { input: '-add-drive "c" format:raw\\n-run\\n' });
`);
      const r = spawnSync(process.execPath, [`--import=${path.join(REPO, 'dist/test/helpers/launch-log.js')}`, script], {
        encoding: 'utf8',
        env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, GHOSTPREP_LAUNCH_LOG: log, GHOSTPREP_TEST_LANE: 'g1', GHOSTPREP_SPEC_FILE: 'dist/test/x.test.js' },
      });
      expect(r.status, r.stderr).to.equal(0);
      const lines = readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines).to.deep.equal([
        { kind: 'appliance', tool: 'guestfish', drives: 2, group: 'g1', file: 'dist/test/x.test.js' },
        { kind: 'vm', tool: 'qemu-system-x86_64', group: 'g1', file: 'dist/test/x.test.js' },
        { kind: 'mkfs', tool: 'mkfs.ext4', group: 'g1', file: 'dist/test/x.test.js' },
        { kind: 'mkfs', tool: 'mkfs.ext4', group: 'g1', file: 'dist/test/x.test.js' },
        // execa's input reaches the child through its stdin: one launch, not two
        { kind: 'appliance', tool: 'guestfish', drives: 1, group: 'g1', file: 'dist/test/x.test.js' },
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
