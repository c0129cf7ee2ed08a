import type { FileChange } from '../../core/file-change.js';
import type { CustomizeOperation as Operation } from '../../core/operation.js';
import { hasSystemd, write } from '../util.js';

const DIR = '/usr/local/lib/ghostprep';
const DONE = '/var/lib/ghostprep/firstboot.done';

/**
 * Commands run once at first boot. systemd guests get a oneshot unit guarded
 * by ConditionPathExists=!DONE; OpenRC guests (alpine) a local.d script.
 * Each command is its own script, so one failing does not hide the others'
 * output; the runner logs to the journal / /var/log/ghostprep-firstboot.log.
 */
export const firstbootOperation: Operation = {
  name: 'firstboot',
  kind: 'customize',
  description: 'install run-once first-boot commands (systemd unit or OpenRC local.d)',
  defaultEnabled: true,
  order: 90,
  guests: ['linux'],
  async plan({ guest, profile }) {
    const steps = profile.firstboot ?? [];
    if (!steps.length) return [];
    const changes: FileChange[] = [{ op: 'mkdir', source: 'firstboot', path: `${DIR}/firstboot.d`, mode: 0o755, uid: 0, gid: 0 }];
    steps.forEach((s, i) => {
      const file = `${DIR}/firstboot.d/${String(i + 1).padStart(2, '0')}-${s.name}.sh`;
      changes.push(write('firstboot', file, `#!/bin/sh\n# ghostprep first-boot step "${s.name}"\nset -e\n${s.run}\n`, 0o755));
    });
    changes.push(write('firstboot', `${DIR}/firstboot.sh`, RUNNER, 0o755));
    if (await hasSystemd(guest)) {
      changes.push(write('firstboot', '/etc/systemd/system/ghostprep-firstboot.service', UNIT, 0o644));
      changes.push({ op: 'symlink', source: 'firstboot', path: '/etc/systemd/system/multi-user.target.wants/ghostprep-firstboot.service', target: '/etc/systemd/system/ghostprep-firstboot.service' });
    } else {
      changes.push(write('firstboot', '/etc/local.d/ghostprep-firstboot.start', `#!/bin/sh\n[ -e ${DONE} ] || ${DIR}/firstboot.sh\n`, 0o755));
      changes.push({ op: 'symlink', source: 'firstboot', path: '/etc/runlevels/default/local', target: '/etc/init.d/local' });
    }
    return changes;
  },
};

const RUNNER = `#!/bin/sh
# ghostprep first-boot runner: runs each step once, records failures, then marks done.
log=/var/log/ghostprep-firstboot.log
status=0
for step in ${DIR}/firstboot.d/*.sh; do
  [ -e "$step" ] || continue
  echo "ghostprep-firstboot: running $step" | tee -a "$log"
  if ! sh "$step" >>"$log" 2>&1; then
    echo "ghostprep-firstboot: $step failed" | tee -a "$log"
    status=1
  fi
done
mkdir -p ${DONE.replace(/\/[^/]+$/, '')}
date > ${DONE}
exit $status
`;

const UNIT = `[Unit]
Description=ghostprep first-boot commands (run once)
ConditionPathExists=!${DONE}
After=local-fs.target network-online.target
Wants=network-online.target

[Service]
Type=oneshot
ExecStart=${DIR}/firstboot.sh
RemainAfterExit=yes
StandardOutput=journal+console

[Install]
WantedBy=multi-user.target
`;
