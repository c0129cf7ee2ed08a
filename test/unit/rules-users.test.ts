/**
 * Password hashes stay secret: they are written to shadow only, never to
 * world-readable /etc/passwd (a guest without shadow fails the machine with
 * a message that does not carry the hash), and a passwd that already holds
 * hashes is a secret change in the plan. Ids the kernel treats as invalid
 * are refused.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { MemoryGuest } from '../../src/backends/memory.js';
import { applyUsers, passwdHoldsHashes } from '../../src/identity/users.js';
import { usersOperation } from '../../src/operations/customize/users.js';
import type { OperationContext } from '../../src/core/operation.js';
import type { FileChange } from '../../src/core/file-change.js';
import { idProblem, MAX_ID } from '../../src/fleet/rules-users.js';

const PASSWD = 'root:x:0:0:root:/root:/bin/bash\nmaster:x:1000:1000::/home/master:/bin/bash\n';
const GROUP = 'root:x:0:\nsudo:x:27:\nmaster:x:1000:\n';
const hash = fc.stringMatching(/^\$(6|y|5|2b)\$[A-Za-z0-9./]{4,16}\$[A-Za-z0-9./]{16,86}$/);
const name = fc.constantFrom('master', 'ops', 'backup', 'root', 'svc_1');

const opts = (hasShadow: boolean) => ({ defaultShell: '/bin/sh', hasShadow, hasGshadow: false });
const ctx = (guest: MemoryGuest, users: object[]) => ({ guest, profile: { users }, renderOnly: false }) as unknown as OperationContext;

describe('password hashes never reach /etc/passwd', () => {
  it('without shadow, no hash lands in passwd and no problem message carries it (new and existing users)', () => {
    fc.assert(fc.property(fc.array(fc.record({ name, passwordHash: hash }), { minLength: 1, maxLength: 4 }), (users) => {
      const r = applyUsers({ passwd: PASSWD, group: GROUP }, users, opts(false));
      for (const u of users) {
        expect(r.passwd).to.not.include(u.passwordHash);
        for (const p of r.problems) expect(p).to.not.include(u.passwordHash);
      }
      expect(r.problems.filter((p) => p.includes('no /etc/shadow'))).to.have.length(users.length);
      expect(passwdHoldsHashes(r.passwd)).to.equal(false);
    }));
  });

  it('without shadow, a lock ("!" or "*") may still go into passwd', () => {
    const r = applyUsers({ passwd: PASSWD, group: GROUP }, [{ name: 'master', passwordHash: '!' }], opts(false));
    expect(r.problems).to.deep.equal([]);
    expect(r.passwd).to.include('master:!:1000:');
  });

  it('with shadow, hashes go to shadow only', () => {
    fc.assert(fc.property(fc.array(fc.record({ name, passwordHash: hash }), { minLength: 1, maxLength: 4 }), (users) => {
      const r = applyUsers({ passwd: PASSWD, shadow: 'root:*:19000:0:99999:7:::\nmaster:!:19000:0:99999:7:::\n', group: GROUP }, users, opts(true));
      for (const u of users) expect(r.passwd).to.not.include(u.passwordHash);
      expect(r.shadow).to.include(users.at(-1)!.passwordHash);
    }));
  });

  it('the users operation fails a guest without shadow instead of writing the hash, and says what to do', async () => {
    const guest = new MemoryGuest({ '/etc/passwd': PASSWD, '/etc/group': GROUP });
    const secret = '$6$salt1234$Qm1wQy8m0vYd0rZQfQ1xkz0JkVb0lC3pZ5yq6u9t2bW';
    const err = await usersOperation.plan(ctx(guest, [{ name: 'master', passwordHash: secret }])).then(() => undefined, (e: Error) => e);
    expect(err?.message).to.match(/no \/etc\/shadow.*pwconv/);
    expect(err?.message).to.not.include(secret);
  });

  it('a passwd that already holds hashes is a secret change (the plan shows no line of it)', async () => {
    const legacy = 'root:$1$abcd$0123456789abcdefghijkl:0:0:root:/root:/bin/sh\n';
    const guest = new MemoryGuest({ '/etc/passwd': legacy, '/etc/group': GROUP, '/etc/shadow': 'root:*:19000::::::\n' });
    const changes = await usersOperation.plan(ctx(guest, [{ name: 'ops' }])) as FileChange[];
    const passwd = changes.find((c) => c.path === '/etc/passwd');
    expect(passwd).to.deep.include({ secret: true });
    expect(changes.find((c) => c.path === '/etc/shadow')).to.deep.include({ secret: true });
    const plain = await usersOperation.plan(ctx(new MemoryGuest({ '/etc/passwd': PASSWD, '/etc/group': GROUP, '/etc/shadow': '' }), [{ name: 'ops' }])) as FileChange[];
    expect((plain.find((c) => c.path === '/etc/passwd') as { secret?: boolean }).secret).to.equal(undefined);
  });

  it('passwdHoldsHashes: x, locks and empty fields are no secret; anything else is', () => {
    expect(passwdHoldsHashes('a:x:1:1::/:/bin/sh\nb:*:2:2::/:/bin/sh\nc:!!:3:3::/:/bin/sh\nd::4:4::/:/bin/sh\n+::::::\n')).to.equal(false);
    expect(passwdHoldsHashes('a:abJnggxhB/yWI:1:1::/:/bin/sh\n')).to.equal(true);
  });
});

describe('ids the kernel treats as invalid', () => {
  it('accepts every id in 0..4294967294 but 65535', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: MAX_ID }), (id) => {
      expect(idProblem(id, 'uid') === undefined).to.equal(id !== 65535);
    }));
  });
  it('refuses 65535, 4294967295, negatives and beyond', () => {
    expect(idProblem(65535, 'uid')).to.match(/uint16_t/);
    expect(idProblem(4294967295, 'gid')).to.match(/uid_t/);
    expect(idProblem(-1, 'uid')).to.match(/out of range/);
    expect(idProblem(2 ** 40, 'uid')).to.match(/out of range/);
  });
});

describe('plan without a target', () => {
  it('plans a hash for shadow (shown nowhere) instead of failing for want of a guest shadow file', async () => {
    const guest = new MemoryGuest({ '/etc/passwd': 'root:x:0:0:root:/root:/bin/sh\n', '/etc/group': 'root:x:0:\n' });
    const secret = '$6$salt1234$Qm1wQy8m0vYd0rZQfQ1xkz0JkVb0lC3pZ5yq6u9t2bW';
    const changes = await usersOperation.plan({ ...ctx(guest, [{ name: 'ops', passwordHash: secret }]), renderOnly: true }) as FileChange[];
    const passwd = changes.find((c) => c.path === '/etc/passwd') as { content: Buffer };
    expect(passwd.content.toString()).to.include('ops:x:1000:').and.not.include(secret);
  });
});

describe('a user never takes the home of another user of the guest', () => {
  const passwd = [
    'root:x:0:0:root:/root:/bin/sh',
    'daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin',
    'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin',
    'master:x:1000:1000:Master:/home/master:/bin/bash',
    'svc:x:998:998::/home/svc:/bin/sh',
  ].join('\n') + '\n';
  const files = { passwd, shadow: 'root:*:1::::::\n', group: 'root:x:0:\nmaster:x:1000:\n', gshadow: '' };
  const opts = { defaultShell: '/bin/sh', hasShadow: true, hasGshadow: false };
  const clash = (home: string, name = 'ops') => applyUsers(files, [{ name, home }], opts).problems.filter((p) => p.includes('each user needs a home of their own'));

  it('refuses the home of root, of a regular user and any under /home, in every spelling', () => {
    for (const home of ['/root', '/root/', '/home/master', '/home//master/', '/home/./master', '/home/svc']) expect(clash(home), home).to.have.length(1);
    expect(clash('/home/master', 'master')).to.deep.equal([]);
  });

  it('leaves placeholder homes of system accounts alone', () => {
    for (const home of ['/nonexistent', '/usr/sbin', '/home/ops', '/srv/ops']) expect(clash(home), home).to.deep.equal([]);
  });

  it('an existing user moved onto another user\'s home is refused too', () => {
    expect(applyUsers(files, [{ name: 'master', home: '/root' }], opts).problems.join('\n')).to.match(/user master: home \/root is the home of root in the guest/);
  });
});
