/**
 * The profile and inventory of the trust suite: every identity kind
 * (machine-id, SSH host keys, a user with a password hash, network, a file)
 * so that hostile images meet every kind of write.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';

export const PASSWORD_HASH = '$6$trustSalt0123$5XG0yq3tN0bK6oQvJmC1vSx8hR2wL9eA7dF4gZ1uP3iY6sT0cV5nB8mK2jH7lQ9wE4rT1yU6iO3pA0sD5fG8hJ';

export const TRUST_PROFILE = `
profile: trust
site: {domain: trust.example.org, timezone: Europe/Berlin, gateway: 10.9.0.1, dns: [10.9.0.2]}
machineId: generate
ssh:
  hostKeys: [ed25519, ecdsa]
  authorizedKeys: {root: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEwq1bhOmRG6CDIGM8nxhTzXxOSqMGsnLY0VoTzOKPBe admin@trust"]}
users: [{name: ops, uid: 1601, groups: ["@admin"], shell: /bin/sh, passwordHash: "${PASSWORD_HASH}"}]
timezone: "{{site.timezone}}"
network:
  version: 2
  ethernets:
    lan:
      match: {macaddress: "{{machine.mac}}"}
      set-name: lan
      addresses: ["{{machine.ip}}"]
      routes: [{to: default, via: "{{site.gateway}}"}]
      nameservers: {addresses: "{{site.dns}}"}
files:
  - {path: /etc/ghostprep-node, content: "{{machine.fqdn}}\\n", mode: "0644"}
`;

/** Write trust.yaml and inv.yaml into `dir` for these machine names; returns the -p/-i arguments. */
export function writeInputs(dir: string, names: readonly string[], first = 10): string[] {
  writeFileSync(path.join(dir, 'trust.yaml'), TRUST_PROFILE);
  writeFileSync(path.join(dir, 'inv.yaml'), 'defaults: {profile: trust}\nmachines:\n' + names.map((n, i) =>
    `  - {name: ${n}, mac: "52:54:00:77:${(Math.floor((i + first) / 256)).toString(16).padStart(2, '0')}:${((i + first) % 256).toString(16).padStart(2, '0')}", ip: 10.9.${Math.floor((i + first) / 250)}.${((i + first) % 250) + 2}/16}\n`).join(''));
  return ['-p', path.join(dir, 'trust.yaml'), '-i', path.join(dir, 'inv.yaml')];
}
