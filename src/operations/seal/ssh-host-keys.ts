import type { FileChange } from '../../core/file-change.js';
import type { SealOperation } from '../../core/operation.js';
import { del, guestGlob, hasSystemd, write } from '../util.js';

/** The first-boot key generator a seal installs; apply removes it again (customize/ssh-host-keys.ts). */
export const KEYGEN_UNIT_PATH = '/etc/systemd/system/ghostprep-ssh-keygen.service';
/** Where a seal enables it; apply removes every `*.wants` link to it. */
export const KEYGEN_UNIT_WANTS = '/etc/systemd/system/*.wants/ghostprep-ssh-keygen.service';
const UNIT = KEYGEN_UNIT_PATH;

/**
 * Host keys go; a run-once unit regenerates them before sshd starts, since
 * Debian's sshd does not (virt-sysprep leaves such clones without sshd).
 * OpenRC's sshd init script already runs ssh-keygen -A.
 */
export const sealSshHostKeys: SealOperation = {
  name: 'ssh-host-keys',
  kind: 'seal',
  description: 'remove SSH host keys; install a first-boot unit that runs ssh-keygen -A',
  defaultEnabled: true,
  guests: ['linux'],
  async plan({ guest }) {
    const changes: FileChange[] = (await guestGlob(guest, '/etc/ssh/ssh_host_*')).map((p) => del('ssh-host-keys', p, 'master\'s host key'));
    if (await hasSystemd(guest)) {
      changes.push(write('ssh-host-keys', UNIT, KEYGEN_UNIT, 0o644));
      changes.push({ op: 'symlink', source: 'ssh-host-keys', path: '/etc/systemd/system/multi-user.target.wants/ghostprep-ssh-keygen.service', target: UNIT });
    }
    return changes;
  },
};

const KEYGEN_UNIT = `[Unit]
Description=Generate SSH host keys missing on a sealed clone (ghostprep)
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key
Before=ssh.service sshd.service
After=local-fs.target

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A
RemainAfterExit=yes

[Install]
WantedBy=multi-user.target ssh.service sshd.service
`;
