import { lookupId } from '../../identity/users.js';
import type { DeleteChange, WriteChange } from '../../core/file-change.js';
import type { CustomizeOperation as Operation } from '../../core/operation.js';
import { del, guestGlob, readText, write } from '../util.js';
import { KEYGEN_UNIT_PATH, KEYGEN_UNIT_WANTS } from '../seal/ssh-host-keys.js';

const ALL_TYPES = ['dsa', 'ecdsa', 'ed25519', 'rsa', 'rsa1'];

/**
 * Host keys from the state dir, one pair per profile type; types the
 * profile does not list are removed. On rhel 8+ the private keys are 0640
 * root:ssh_keys (when the group exists), as the distribution ships them.
 * The first-boot unit of a sealed master goes too: it runs `ssh-keygen -A`
 * whenever the ed25519 key is missing, so a clone given only other types
 * would get every default type at first boot. (A seal installs it only
 * with systemd; OpenRC has no such unit of ours.)
 */
export const sshHostKeysOperation: Operation = {
  name: 'ssh-host-keys',
  kind: 'customize',
  description: 'regenerate SSH host keys per machine (kept in the state dir); remove stale types',
  defaultEnabled: true,
  order: 30,
  guests: ['linux'],
  async plan({ guest, distro, identity, profile }) {
    const types = profile.ssh?.hostKeys ?? [];
    if (!types.length) return [];
    const sshKeysGid = distro.family === 'rhel' && (distro.major ?? 0) >= 8 && distro.id !== 'fedora' ? lookupId(await readText(guest, '/etc/group'), 'ssh_keys') : undefined;
    const changes: Array<WriteChange | DeleteChange> = [];
    for (const type of types) {
      const pair = identity.hostKeys.find((k) => k.type === type);
      const base = `/etc/ssh/ssh_host_${type}_key`;
      const pending = identity.pending || !pair;
      const extra = pending ? { pending: true, reason: 'new key generated at apply (kept in the state dir)' } : {};
      changes.push({ ...write('ssh-host-keys', base, pair?.privateKey ?? Buffer.alloc(0), sshKeysGid !== undefined ? 0o640 : 0o600, { secret: true, ...extra }), gid: sshKeysGid ?? 0 });
      changes.push(write('ssh-host-keys', base + '.pub', pair ? pair.publicKey + '\n' : '', 0o644, extra));
    }
    for (const stale of ALL_TYPES.filter((t) => !types.includes(t as never))) {
      for (const suffix of ['', '.pub']) {
        const p = `/etc/ssh/ssh_host_${stale}_key${suffix}`;
        if (await guest.lstat(p)) changes.push(del('ssh-host-keys', p, `stale ${stale} host key of the master (type not in the profile)`));
      }
    }
    // one lstat per machine when the master was not sealed; the links are looked for only beside a unit
    if (await guest.lstat(KEYGEN_UNIT_PATH)) {
      for (const p of [...await guestGlob(guest, KEYGEN_UNIT_WANTS), KEYGEN_UNIT_PATH]) {
        changes.push(del('ssh-host-keys', p, 'seal\'s first-boot ssh-keygen -A unit: the keys come from the profile'));
      }
    }
    return changes;
  },
};
