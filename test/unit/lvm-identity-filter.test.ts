/**
 * The LVM identity pass's last step (lvm-identity.ts), against a scripted
 * session (no appliance): after every clone of the appliance was renewed
 * behind its own LVM filter, LVM sees every drive again; a clone whose
 * renewal failed still carries the master's PV UUIDs, so it stays out of
 * LVM's view (with it in view, LVM refuses every VG it duplicates, the other
 * clones' too) and fails alone.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { renewLvmIdentities } from '../../src/backends/guestfs/lvm-identity.js';
import { GuestfsError, type GuestfsSession } from '../../src/backends/guestfs/session.js';

/** A session of `drives` drives that runs nothing: each failing drive fails at `pvchange-uuid`. */
function scripted(drives: number, failing: ReadonlySet<number>): { session: GuestfsSession; commands: string[] } {
  const commands: string[] = [];
  let shown = -1;
  const letter = (i: number) => 'abcdefghijklmnopqrstuvwxyz'[i]!;
  const run = async (name: string, args: readonly unknown[] = []): Promise<string> => {
    commands.push([name, ...args.map(String)].join(' '));
    if (name === 'lvm-set-filter') shown = 'abcdefghijklmnopqrstuvwxyz'.indexOf(String(args[0]).slice(-1));
    if (name === 'pvchange-uuid' && failing.has(shown)) throw new GuestfsError('guestfish pvchange-uuid: failed', name, 'no');
    if (name === 'pvs') return `/dev/sd${letter(shown)}1`;
    if (name === 'vgs') return 'vg-master';
    if (name === 'pvuuid') return `x81Vod-WiIo-67yy-V6dA-3Bhb-bD5B-1oP1x${shown % 10}`;
    if (name === 'vguuid') return 'QPRxm2-oGKc-HOsM-zLmZ-sNsc-R4I9-uaeMzR';
    return '';
  };
  const session = {
    alive: true,
    drives: Array.from({ length: drives }, (_, i) => ({ path: `c${i}.qcow2`, format: 'qcow2', readonly: false })),
    command: run, text: run, lines: async (n: string, a?: unknown[]) => (await run(n, a)).split('\n').filter(Boolean),
  } as unknown as GuestfsSession;
  return { session, commands };
}

const jobs = (n: number) => Array.from({ length: n }, (_, index) => ({ index, image: `c${index}.qcow2`, spec: { newUuids: true }, vgNames: ['vg-master'] }));

describe('LVM identity pass: the filter it leaves', () => {
  it('clears the filter when every clone was renewed', async () => {
    const { session, commands } = scripted(3, new Set());
    const out = await renewLvmIdentities(session, jobs(3));
    expect([...out.values()].every((r) => !(r instanceof Error))).to.equal(true);
    expect(commands.at(-1)).to.equal('lvm-clear-filter');
  });

  it('property: a clone that failed stays out of view and fails alone; every other drive is shown', async () => {
    await fc.assert(fc.asyncProperty(fc.integer({ min: 1, max: 8 }).chain((n) => fc.tuple(fc.constant(n), fc.uniqueArray(fc.integer({ min: 0, max: n - 1 }), { minLength: 1 }))), async ([n, bad]) => {
      const failing = new Set(bad);
      const { session, commands } = scripted(n, failing);
      const out = await renewLvmIdentities(session, jobs(n));
      for (let i = 0; i < n; i++) expect(out.get(i) instanceof Error, `drive ${i}`).to.equal(failing.has(i));
      const good = Array.from({ length: n }, (_, i) => i).filter((i) => !failing.has(i)).map((i) => `/dev/sd${'abcdefgh'[i]}`);
      expect(commands.at(-1)).to.equal(good.length ? `lvm-set-filter ${good.join(' ')}` : `pvchange-uuid /dev/sd${'abcdefgh'[n - 1]}1`);
      expect(commands).to.not.include('lvm-clear-filter');
    }), { numRuns: 100 });
  });
});
