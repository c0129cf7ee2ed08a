/** Host name rules (RFC 1123) and the FQDN. */
export function checkHostname(name: string): string | undefined {
  if (!name) return 'host name is empty';
  if (/[\s]/.test(name)) return `host name ${JSON.stringify(name)} contains white space`;
  if (name.length > 63) return `host name "${name}" is longer than 63 characters`;
  if (!/^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?$/.test(name)) return `host name "${name}" is not a valid RFC 1123 label (letters, digits and inner hyphens only)`;
  return undefined;
}

export function checkFqdn(fqdn: string): string | undefined {
  if (fqdn.length > 253) return `FQDN "${fqdn}" is longer than 253 characters`;
  for (const label of fqdn.split('.')) {
    const e = checkHostname(label);
    if (e) return `FQDN ${JSON.stringify(fqdn)}: ${e}`;
  }
  return undefined;
}

export function fqdnOf(hostname: string, domain: string | undefined): string {
  return domain ? `${hostname}.${domain}` : hostname;
}
