import type { CustomizeOperation as Operation } from '../../core/operation.js';
import { readText, write, modeOr, exists } from '../util.js';

/**
 * /etc/hostname everywhere; the 127.0.1.1 line of /etc/hosts on Debian
 * (and any line naming the master's name elsewhere); HOSTNAME= in
 * /etc/sysconfig/network where the guest has it (rhel 6); /etc/HOSTNAME on
 * suse when present.
 */
export const hostnameOperation: Operation = {
  name: 'hostname',
  kind: 'customize',
  description: 'set the host name: /etc/hostname, /etc/hosts, per-family files',
  defaultEnabled: true,
  order: 10,
  guests: ['linux'],
  async plan({ guest, distro, machine }) {
    const { hostname, fqdn } = machine;
    const old = (await readText(guest, '/etc/hostname'))?.trim().split('\n')[0]?.trim();
    const changes = [write('hostname', '/etc/hostname', hostname + '\n', 0o644)];
    const hosts = await readText(guest, '/etc/hosts');
    if (hosts !== undefined || distro.family === 'debian') {
      const next = rewriteHosts(hosts ?? '127.0.0.1\tlocalhost\n', old, hostname, fqdn, distro.family === 'debian');
      changes.push(write('hostname', '/etc/hosts', next, await modeOr(guest, '/etc/hosts', 0o644)));
    }
    const sysconfig = await readText(guest, '/etc/sysconfig/network');
    if (sysconfig !== undefined && (/^HOSTNAME=/m.test(sysconfig) || (distro.family === 'rhel' && (distro.major ?? 99) <= 6))) {
      const next = /^HOSTNAME=/m.test(sysconfig) ? sysconfig.replace(/^HOSTNAME=.*$/m, `HOSTNAME=${fqdn}`) : sysconfig + (sysconfig.endsWith('\n') || !sysconfig ? '' : '\n') + `HOSTNAME=${fqdn}\n`;
      changes.push(write('hostname', '/etc/sysconfig/network', next, await modeOr(guest, '/etc/sysconfig/network', 0o644)));
    }
    if (distro.family === 'suse' && (await exists(guest, '/etc/HOSTNAME'))) changes.push(write('hostname', '/etc/HOSTNAME', fqdn + '\n', 0o644));
    return changes;
  },
};

/** Replace the master's names in /etc/hosts; on Debian keep one `127.0.1.1 fqdn host` line. */
export function rewriteHosts(text: string, old: string | undefined, hostname: string, fqdn: string, debianLine: boolean): string {
  const names = fqdn === hostname ? hostname : `${fqdn} ${hostname}`;
  const lines = text.split('\n');
  const trailing = text.endsWith('\n');
  if (trailing) lines.pop();
  let sawLine = false;
  const out = lines.map((line) => {
    const [body = '', ...comment] = line.split('#');
    const fields = body.trim().split(/\s+/).filter(Boolean);
    if (fields[0] === '127.0.1.1' && debianLine) {
      sawLine = true;
      return `127.0.1.1\t${names}`;
    }
    if (!old || fields.length < 2 || fields.slice(1).every((f) => f !== old && !f.startsWith(old + '.'))) return line;
    const renamed = fields.slice(1).map((f) => (f === old ? hostname : f.startsWith(old + '.') ? fqdn.includes('.') ? fqdn : hostname + f.slice(old.length) : f));
    return [fields[0], ...new Set(renamed)].join('\t') + (comment.length ? ' #' + comment.join('#') : '');
  });
  if (debianLine && !sawLine) {
    const idx = out.findIndex((l) => /^127\.0\.0\.1\s/.test(l));
    out.splice(idx + 1, 0, `127.0.1.1\t${names}`);
  }
  return out.join('\n') + '\n';
}
