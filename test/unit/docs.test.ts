import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { operations } from '../../src/operations/index.js';
import { HELPERS } from '../../src/template/helpers.js';
import { REPO } from '../helpers/rootfs.js';

const README = readFileSync(path.join(REPO, 'README.md'), 'utf8');

describe('README', () => {
  it('opens with exactly the two set-up commands', () => {
    const firstBlock = /```sh\n([\s\S]*?)```/.exec(README)![1]!;
    expect(firstBlock.split('\n').filter(Boolean).map((l) => l.split('#')[0]!.trim())).to.deep.equal(['npm start', 'npm test']);
  });
  for (const [kind, heading] of [['customize', '### Customize operations'], ['seal', '### Seal operations']] as const) {
    it(`documents every registered ${kind} operation in its table, and nothing else`, () => {
      const section = README.slice(README.indexOf(heading), README.indexOf('\n## ', README.indexOf(heading)));
      const cut = section.indexOf('\n### ', 4);
      const own = cut > 0 ? section.slice(0, cut) : section;
      const table = [...own.matchAll(/^\| `([a-z-]+)` \| (on|off) \| (.+) \|$/gm)].map((m) => [m[1], m[2] === 'on', m[3]]);
      const registry = (kind === 'seal' ? operations.list('seal') : operations.list('customize')).map((o) => [o.name, o.defaultEnabled, o.description]);
      expect(table).to.deep.equal(registry);
    });
  }
  it('documents every template helper', () => {
    for (const h of HELPERS) expect(README).to.include(`| \`${h.name}\` |`);
  });
  it('documents every command with an example', function () {
    this.timeout(120_000);
    const help = spawnSync(process.execPath, [path.join(REPO, 'dist/src/cli/main.js'), '--help'], { encoding: 'utf8' }).stdout;
    const section = help.slice(help.indexOf('Commands:'), help.indexOf('Exit codes'));
    const commands = [...section.matchAll(/^  ([a-z][a-z-]*)(?: \[options\]| <|\s)/gm)].map((m) => m[1]!).filter((c) => c !== 'help');
    expect(commands.length).to.be.greaterThan(4);
    for (const c of commands) {
      expect(README, `README section for ${c}`).to.include(`### ${c}`);
      expect(README, `README example for ${c}`).to.include(`ghostprep ${c}`);
      const sub = spawnSync(process.execPath, [path.join(REPO, 'dist/src/cli/main.js'), c, '--help'], { encoding: 'utf8' }).stdout;
      expect(sub, `${c} --help`).to.match(/Usage: ghostprep/);
    }
  });
});
