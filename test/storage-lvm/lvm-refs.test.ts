/**
 * VG references in guest files (src/storage/lvm-refs.ts): the four forms,
 * dash escaping of device-mapper names, renames in one pass, and the text
 * around references kept byte for byte. Where each LV starts on its PV,
 * from LVM's metadata text (lvm-probe.ts), which audit follows to the file
 * systems on the LVs.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { lvStartsOnPv } from '../../src/backends/guestfs/lvm-probe.js';
import { fstabMounts } from '../../src/backends/guestfs/os-inspect.js';
import { dmEscape, findVgReferences, mapperName, parseMapperName, rewriteVgReferences, vgNameProblem } from '../../src/storage/lvm-refs.js';

const nameChar = fc.constantFrom(...'abcz09+_.-'.split(''));
const lvmName = fc.tuple(fc.constantFrom(...'abz09+_.'.split('')), fc.array(nameChar, { maxLength: 8 }))
  .map(([h, t]) => h + t.join(''))
  .filter((n) => vgNameProblem(n) === undefined);

describe('LVM references (lvm-refs)', () => {
  it('escapes dashes in device-mapper names and decodes them back', () => {
    expect(mapperName('vg-master', 'root')).to.equal('vg--master-root');
    expect(mapperName('ubuntu-vg', 'ubuntu-lv')).to.equal('ubuntu--vg-ubuntu--lv');
    expect(parseMapperName('vg--master-root')).to.deep.equal({ vg: 'vg-master', lv: 'root' });
    fc.assert(fc.property(lvmName, lvmName, (vg, lv) => {
      expect(parseMapperName(mapperName(vg, lv))).to.deep.equal({ vg, lv });
    }));
  });

  it('rewrites fstab, crypttab and GRUB lines of a Debian LVM guest', () => {
    const renames = new Map([['vg-master', 'vg-node01']]);
    const fstab = '/dev/mapper/vg--master-root / ext4 errors=remount-ro 0 1\n/dev/vg-master/var /var ext4 defaults 0 2\n# /dev/mapper/vg--masterx-root stays\n/dev/mapper/vg--master--old-data /d ext4 defaults 0 2\n';
    expect(rewriteVgReferences(fstab, renames)).to.equal('/dev/mapper/vg--node01-root / ext4 errors=remount-ro 0 1\n/dev/vg-node01/var /var ext4 defaults 0 2\n# /dev/mapper/vg--masterx-root stays\n/dev/mapper/vg--master--old-data /d ext4 defaults 0 2\n');
    const grub = 'GRUB_CMDLINE_LINUX="root=/dev/mapper/vg--master-root rd.lvm.vg=vg-master rd.lvm.lv=vg-master/root rd.lvm.lv=vg-master/swap resume=/dev/disk/by-id/dm-name-vg--master-swap"\n';
    expect(rewriteVgReferences(grub, renames)).to.equal('GRUB_CMDLINE_LINUX="root=/dev/mapper/vg--node01-root rd.lvm.vg=vg-node01 rd.lvm.lv=vg-node01/root rd.lvm.lv=vg-node01/swap resume=/dev/disk/by-id/dm-name-vg--node01-swap"\n');
    const crypttab = 'cswap /dev/vg-master/swap /dev/urandom swap\n';
    expect(rewriteVgReferences(crypttab, renames)).to.equal('cswap /dev/vg-node01/swap /dev/urandom swap\n');
    // a longer name that starts like the old one is another VG
    expect(rewriteVgReferences('rd.lvm.vg=vg-master2 /dev/vg-master2/x', renames)).to.equal('rd.lvm.vg=vg-master2 /dev/vg-master2/x');
    // a path that merely contains /dev/ is not a reference
    expect(rewriteVgReferences('/srv/dev/vg-master/x', renames)).to.equal('/srv/dev/vg-master/x');
  });

  it('swaps two names in one pass (renames never chain)', () => {
    const renames = new Map([['a', 'b'], ['b', 'a']]);
    expect(rewriteVgReferences('/dev/a/x /dev/mapper/b-y rd.lvm.vg=a', renames)).to.equal('/dev/b/x /dev/mapper/a-y rd.lvm.vg=b');
  });

  it('property: every reference of every form points at the new name; nothing else changes', () => {
    const form = fc.constantFrom('dev', 'mapper', 'dmname', 'lv', 'vg');
    const ref = (f: string, vg: string, lv: string): string => ({
      dev: `/dev/${vg}/${lv}`, mapper: `/dev/mapper/${mapperName(vg, lv)}`, dmname: `/dev/disk/by-id/dm-name-${mapperName(vg, lv)}`,
      lv: `rd.lvm.lv=${vg}/${lv}`, vg: `rd.lvm.vg=${vg}`,
    })[f]!;
    const filler = fc.constantFrom(' ', '\n', ' ro quiet ', '"', ' UUID=1234 / ext4 ', '\t');
    fc.assert(fc.property(
      fc.uniqueArray(lvmName, { minLength: 2, maxLength: 4 }), lvmName,
      fc.array(fc.tuple(fc.nat(), form, lvmName, filler), { minLength: 1, maxLength: 10 }),
      (vgs, fresh, parts) => {
        const [old, other] = vgs as [string, string];
        const renamed = vgs.includes(fresh) ? `${fresh}x` : fresh;
        const pick = (i: number): string => (i % 2 ? old : other);
        const before = parts.map(([i, f, lv, fill]) => ref(f, pick(i), lv) + fill).join('');
        const expected = parts.map(([i, f, lv, fill]) => ref(f, pick(i) === old ? renamed : pick(i), lv) + fill).join('');
        const after = rewriteVgReferences(before, new Map([[old, renamed]]));
        expect(after).to.equal(expected);
        expect(findVgReferences(after).map((r) => r.vg)).to.deep.equal(parts.map(([i]) => (pick(i) === old ? renamed : pick(i))));
        // applying the same rename again changes nothing more
        expect(rewriteVgReferences(after, new Map([[old, renamed]]))).to.equal(after);
      },
    ), { numRuns: 300 });
  });

  it('leaves text without references byte for byte', () => {
    fc.assert(fc.property(fc.string({ unit: 'binary' }), lvmName, (text, vg) => {
      const refs = findVgReferences(text).map((r) => r.vg);
      const out = rewriteVgReferences(text, new Map([[vg, `${vg}-new`]]));
      if (!refs.includes(vg)) expect(out).to.equal(text);
    }), { numRuns: 300 });
  });

  it('names what is wrong with a VG name', () => {
    expect(vgNameProblem('vg-node01')).to.equal(undefined);
    expect(vgNameProblem('-vg')).to.match(/may not start/);
    expect(vgNameProblem('vg node')).to.match(/may hold only/);
    expect(vgNameProblem('mapper')).to.match(/taken/);
    expect(vgNameProblem('')).to.match(/empty/);
    expect(dmEscape('a-b-')).to.equal('a--b--');
  });
});

const METADATA = `vg-master {
id = "Ab12Cd-3EfG-h4Ij-K5lM-n6Op-Q7rS-t8UvWx"
seqno = 4
format = "lvm2"	# informational
status = ["RESIZEABLE", "READ", "WRITE"]
flags = []
extent_size = 8192
max_lv = 0
max_pv = 0
metadata_copies = 0

physical_volumes {

pv0 {
id = "PvUuid-0000-1111-2222-3333-4444-555555"
device = "/dev/sda1"

status = ["ALLOCATABLE"]
flags = []
dev_size = 262144
pe_start = 2048
pe_count = 31
}
}

logical_volumes {

root {
id = "LvRoot-0000-1111-2222-3333-4444-555555"
status = ["READ", "WRITE", "VISIBLE"]
flags = []
creation_time = 1700000000	# 2023-11-14 22:13:20 +0000
creation_host = "host {x}"
segment_count = 1

segment1 {
start_extent = 0
extent_count = 16

type = "striped"
stripe_count = 1	# linear

stripes = [
"pv0", 0
]
}
}

var {
id = "LvVar0-0000-1111-2222-3333-4444-555555"
status = ["READ", "WRITE", "VISIBLE"]
flags = []
segment_count = 2

segment2 {
start_extent = 5
extent_count = 5

type = "striped"
stripe_count = 1

stripes = [
"pv0", 26
]
}
segment1 {
start_extent = 0
extent_count = 5

type = "striped"
stripe_count = 1

stripes = [
"pv0", 16
]
}
}

thin {
id = "LvThin-0000-1111-2222-3333-4444-555555"
segment_count = 1

segment1 {
start_extent = 0
extent_count = 1

type = "thin-pool"
metadata = "thin_tmeta"
}
}
}
}
# Generated by LVM2 version 2.03.16(2) (2022-05-18): Mon Dec  7 06:00:00 2026

contents = "Text Format Volume Group"
version = 1
`;

describe('LV starts on a PV (lvm-probe)', () => {
  it('maps each linear LV to its byte offset on the PV; other PVs and segment types are left out', () => {
    expect(lvStartsOnPv(METADATA, 'PvUuid-0000-1111-2222-3333-4444-555555')).to.deep.equal([
      { name: 'root', offset: 2048 * 512 },
      { name: 'var', offset: 2048 * 512 + 16 * 8192 * 512 },
    ]);
    expect(lvStartsOnPv(METADATA, 'Other0-0000-1111-2222-3333-4444-555555')).to.deep.equal([]);
    expect(lvStartsOnPv('garbage { = ] "', 'x')).to.deep.equal([]);
  });

  it('never throws on any text (a damaged or foreign metadata area)', () => {
    fc.assert(fc.property(fc.string({ maxLength: 400 }), (t) => { expect(lvStartsOnPv(t, 'PvUuid-0000-1111-2222-3333-4444-555555')).to.be.an('array'); }));
    fc.assert(fc.property(fc.integer({ min: 0, max: METADATA.length }), (cut) => { expect(lvStartsOnPv(METADATA.slice(0, cut), 'PvUuid-0000-1111-2222-3333-4444-555555')).to.be.an('array'); }));
  });
});

describe('fstab mounts of a guest whose VG was just renamed (os-inspect)', () => {
  const vol = (device: string, type = 'ext4') => ({ device, type, uuid: '', label: '', partUuid: '', partLabel: '' });

  it('finds an LV the fstab names by its old VG under the new name, in both forms', () => {
    const vols = [vol('/dev/sda1', 'LVM2_member'), vol('/dev/vg-node01/root'), vol('/dev/vg-node01/var'), vol('/dev/vg-node01/srv')];
    const fstab = '/dev/mapper/vg--master-root / ext4 errors=remount-ro 0 1\n/dev/vg-master/var /var ext4 defaults 0 2\n/dev/mapper/vg--master-srv /srv ext4 defaults 0 2\n/dev/vg-other/x /x ext4 defaults 0 2\n';
    const renamed = fstabMounts(fstab, vols[1]!, vols, new Map(), new Map([['vg-master', 'vg-node01']]));
    expect(renamed.mounts).to.deep.equal([
      { mountpoint: '/', device: '/dev/vg-node01/root' }, { mountpoint: '/srv', device: '/dev/vg-node01/srv' }, { mountpoint: '/var', device: '/dev/vg-node01/var' },
    ]);
    expect(renamed.notes.join('\n')).to.match(/\/x \(\/dev\/vg-other\/x\) is not on this image/);
    // without the renames the old names find nothing (what a guest inspected after the rename saw)
    expect(fstabMounts(fstab, vols[1]!, vols).mounts).to.deep.equal([{ mountpoint: '/', device: '/dev/vg-node01/root' }]);
  });

  it('property: any VG and LV names, either form, old name resolves to the renamed LV; an unrenamed VG does not', () => {
    fc.assert(fc.property(lvmName, lvmName, lvmName, fc.boolean(), (from, to, lv, viaMapper) => {
      fc.pre(from !== to);
      const vols = [vol(`/dev/${to}/root`), vol(`/dev/${to}/${lv}`)];
      const spec = viaMapper ? `/dev/mapper/${mapperName(from, lv)}` : `/dev/${from}/${lv}`;
      const { mounts } = fstabMounts(`${spec} /data ext4 defaults 0 2\n`, vols[0]!, vols, new Map(), new Map([[from, to]]));
      expect(mounts).to.deep.include({ mountpoint: '/data', device: `/dev/${to}/${lv}` });
      expect(fstabMounts(`${spec} /data ext4 defaults 0 2\n`, vols[0]!, vols, new Map(), new Map([[`${from}x`, to]])).mounts.some((m) => m.mountpoint === '/data')).to.equal(false);
    }));
  });
});
