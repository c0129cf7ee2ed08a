/**
 * unattend.xml per machine, from a Handlebars template
 * (templates/windows/unattend.xml.hbs, or the profile's windows.template).
 * Its own Handlebars instance WITH escaping: every value lands in XML, and
 * Handlebars' HTML escaping (& < > " ' ` =) yields valid XML character
 * references. Strict: an unknown variable is an error naming the template.
 * Network settings: see network.ts (the profile's network model, or
 * windows.network).
 */
import path from 'node:path';
import type { RenderedMachine } from '../core/machine.js';
import { originOf } from '../profile/profile-merge.js';
import { explain, loadTemplateFile, TEMPLATE_DIR } from '../template/render.js';
import { createStrictHandlebars } from '../template/strict-runtime.js';
import { GhostprepError } from '../util/errors.js';
import { unattendInterfaces } from './network.js';
import { encodeUnattendPassword, generateWindowsPassword, passwordStateFile, provisioningBlob, PROVISIONING_FILE_MAX_BYTES, readSecretFile, secretPath } from './secrets.js';
import { computerNameOf, windowsProfile, windowsTimeZone, type WindowsSecretSource } from './settings.js';

export const DEFAULT_UNATTEND_TEMPLATE = 'windows/unattend.xml.hbs';

// own properties of the data only, text only, no log helper: like every profile template (strict-runtime.ts)
const hb = createStrictHandlebars();

/** What refuses a profile's windows: section before anything is rendered (also validate's located errors, check.ts). */
export const DEPRECATED_OOBE: Record<string, string> = {
  skipMachineOOBE: 'OOBE/SkipMachineOOBE is deprecated since Windows 8: Setup may stop at an OOBE page or leave the system without an account; use the hide* settings and oobe.accounts / administratorPassword instead',
  skipUserOOBE: 'OOBE/SkipUserOOBE is deprecated since Windows 8: Setup may stop at an OOBE page or leave the system without an account; use the hide* settings and oobe.accounts / administratorPassword instead',
};
export const LITERAL_PASSWORD = 'a password is never taken from the profile text (profiles are committed, diffed and shown); name a file with passwordFile: (a {{machine.name}} or {name} pattern) or let ghostprep generate one into the state dir with generate: true';

/** The profile pointers of literal passwords and deprecated OOBE settings, with why each is refused. */
export function refusedWindowsKeys(w: ReturnType<typeof windowsProfile>): Array<{ pointer: string; message: string }> {
  const out: Array<{ pointer: string; message: string }> = [];
  const o = w.oobe as Record<string, unknown> | undefined;
  for (const [key, why] of Object.entries(DEPRECATED_OOBE)) if (o && o[key] !== undefined) out.push({ pointer: `/windows/oobe/${key}`, message: why });
  const has = (x: unknown): boolean => !!x && typeof x === 'object' && Object.hasOwn(x, 'password');
  if (has(o)) out.push({ pointer: '/windows/oobe/password', message: LITERAL_PASSWORD });
  if (has(o?.administratorPassword)) out.push({ pointer: '/windows/oobe/administratorPassword/password', message: LITERAL_PASSWORD });
  if (has(o?.autoLogon)) out.push({ pointer: '/windows/oobe/autoLogon/password', message: 'AutoLogon takes the password of its account (oobe.accounts or administratorPassword); ' + LITERAL_PASSWORD });
  (w.oobe?.accounts ?? []).forEach((a, i) => { if (has(a)) out.push({ pointer: `/windows/oobe/accounts/${i}/password`, message: LITERAL_PASSWORD }); });
  if (has(w.domainJoin?.credentials)) out.push({ pointer: '/windows/domainJoin/credentials/password', message: LITERAL_PASSWORD.replace(' or let ghostprep generate one into the state dir with generate: true', '') });
  return out;
}

/** The state dir's per-machine secrets (the operations' ResolvedIdentity.stateSecret). */
export interface SecretKeeper {
  readonly stateSecret?: (file: string, make: () => string) => { value: string; pending: boolean };
}

/** The secrets of one machine's answer file, in clear (encoded by the template data). */
export interface UnattendSecrets {
  readonly administratorPassword?: string;
  readonly accounts: ReadonlyMap<string, string>;
  readonly accountData?: string;
  readonly domainPassword?: string;
  readonly productKey?: string;
  /** A generated password is not kept yet (plan before the first apply): apply generates its own. */
  readonly pending: boolean;
}

/** Read (or generate) the secrets the machine's windows: section asks for. */
export function unattendSecrets(r: RenderedMachine, identity?: SecretKeeper): UnattendSecrets {
  const w = windowsProfile(r.profile);
  const refused = refusedWindowsKeys(w);
  if (refused.length) throw new GhostprepError(`machine ${r.prepared.name}: ${refused[0]!.pointer}: ${refused[0]!.message}`);
  let pending = false;
  const password = (src: WindowsSecretSource | undefined, pointer: string, account: string): string | undefined => {
    if (!src) return undefined;
    if (src.passwordFile) return readSecretFile(r, `${pointer}/passwordFile`, src.passwordFile, `password file of ${account}`);
    if (src.generate) {
      if (!identity?.stateSecret) throw new GhostprepError(`machine ${r.prepared.name}: ${pointer}/generate: a generated password needs the state dir`);
      const got = identity.stateSecret(passwordStateFile(account), () => generateWindowsPassword());
      pending ||= got.pending;
      return got.value;
    }
    throw new GhostprepError(`machine ${r.prepared.name}: ${pointer}: give passwordFile: or generate: true`);
  };
  const o = w.oobe;
  const administratorPassword = password(o?.administratorPassword, '/windows/oobe/administratorPassword', 'Administrator');
  const accounts = new Map<string, string>();
  (o?.accounts ?? []).forEach((a, i) => {
    const p = password(a, `/windows/oobe/accounts/${i}`, a.name);
    if (p !== undefined) accounts.set(a.name, p);
  });
  const dj = w.domainJoin;
  const accountData = dj?.provisioningFile
    ? provisioningBlob(readSecretFile(r, '/windows/domainJoin/provisioningFile', dj.provisioningFile, 'djoin provisioning file', PROVISIONING_FILE_MAX_BYTES), secretPath(r, '/windows/domainJoin/provisioningFile', dj.provisioningFile))
    : undefined;
  const domainPassword = dj?.credentials ? readSecretFile(r, '/windows/domainJoin/credentials/passwordFile', dj.credentials.passwordFile, 'domain join password file') : undefined;
  const productKey = w.productKey ?? (w.productKeyFile ? readSecretFile(r, '/windows/productKeyFile', w.productKeyFile, 'product key file').trim() : undefined);
  if (productKey !== undefined && !/^[A-Za-z0-9]{5}(?:-[A-Za-z0-9]{5}){4}$/.test(productKey)) {
    throw new GhostprepError(`machine ${r.prepared.name}: ${w.productKey !== undefined ? 'windows.productKey' : `windows.productKeyFile ${secretPath(r, '/windows/productKeyFile', w.productKeyFile!)}`}: not a product key (five groups of five letters or digits, separated by hyphens)`);
  }
  return { administratorPassword, accounts, accountData, domainPassword, productKey, pending };
}

/** Whether the machine's answer file holds a secret (the plan then shows it as secret). */
export function unattendHasSecrets(s: UnattendSecrets): boolean {
  return s.administratorPassword !== undefined || s.accounts.size > 0 || s.accountData !== undefined || s.domainPassword !== undefined || s.productKey !== undefined;
}

/** The template's account and join data from the secrets (passwords encoded as unattend expects). */
function secretData(r: RenderedMachine, s: UnattendSecrets): Record<string, unknown> {
  const w = windowsProfile(r.profile);
  const o = w.oobe ?? {};
  const accounts = (o.accounts ?? []).map((a) => ({
    name: a.name, group: a.group ?? 'Administrators', displayName: a.displayName ?? '', description: a.description ?? '',
    password: encodeUnattendPassword(s.accounts.get(a.name) ?? '', 'Password'),
  }));
  let autoLogon: Record<string, unknown> | null = null;
  if (o.autoLogon) {
    const user = o.autoLogon.user;
    const clear = user.toLowerCase() === 'administrator' && !s.accounts.has(user) ? s.administratorPassword : s.accounts.get(user);
    if (clear === undefined) throw new GhostprepError(`machine ${r.prepared.name}: windows.oobe.autoLogon.user "${user}" is not one of oobe.accounts${s.administratorPassword !== undefined ? ' nor Administrator' : ' (nor Administrator with oobe.administratorPassword)'}`);
    autoLogon = { username: user, count: o.autoLogon.count ?? 1, password: encodeUnattendPassword(clear, 'Password') };
  }
  const dj = w.domainJoin;
  const domainJoin = dj && (s.accountData !== undefined || dj.credentials)
    ? {
      accountData: s.accountData ?? '',
      credentials: s.accountData === undefined && dj.credentials ? { domain: dj.credentials.domain, username: dj.credentials.username, password: s.domainPassword ?? '' } : null,
      joinDomain: s.accountData === undefined ? (dj.joinDomain ?? dj.credentials?.domain ?? '') : '',
      machineObjectOU: s.accountData === undefined ? (dj.machineObjectOU ?? '') : '',
    }
    : null;
  return {
    administratorPassword: s.administratorPassword !== undefined ? encodeUnattendPassword(s.administratorPassword, 'AdministratorPassword') : '',
    accounts,
    userAccounts: s.administratorPassword !== undefined || accounts.length > 0,
    autoLogon,
    domainJoin,
    productKey: s.productKey ?? '',
  };
}

const NO_SECRETS: UnattendSecrets = { accounts: new Map(), pending: false };

/** The data the template sees (documented in docs/windows.md). */
export function unattendData(r: RenderedMachine, arch: string, secrets: UnattendSecrets = NO_SECRETS): Record<string, unknown> {
  const w = windowsProfile(r.profile);
  const site = r.profile.site ?? {};
  const interfaces = unattendInterfaces(w.network, r.profile.network);
  const dnsDomain = w.dnsDomain ?? site.domain ?? '';
  return {
    machine: r.context.machine,
    site: r.context.site,
    vars: r.context.vars,
    arch,
    computerName: computerNameOf(r),
    timezone: w.timezone ?? windowsTimeZone(r.profile.timezone ?? site.timezone) ?? '',
    registeredOwner: w.registeredOwner ?? '',
    registeredOrganization: w.registeredOrganization ?? '',
    dnsDomain,
    dnsClient: Boolean(dnsDomain) || interfaces.length > 0,
    interfaces,
    dnsSuffixes: [...new Set(interfaces.flatMap((i) => i.search))].map((name, n) => ({ key: n + 1, name })),
    firstLogonCommands: (w.firstLogonCommands ?? []).map((c, n) => ({ order: n + 1, run: c.run, description: c.description ?? `ghostprep ${n + 1}` })),
    oobe: w.oobe ? oobeScreens(w.oobe) : null,
    locale: w.locale ?? null,
    ...secretData(r, secrets),
  };
}

/** The OOBE element's settings (null when the profile sets none of them). */
function oobeScreens(o: NonNullable<ReturnType<typeof windowsProfile>['oobe']>): Record<string, unknown> | null {
  const screens = {
    hideEula: o.hideEula, hideOEMRegistrationScreen: o.hideOEMRegistrationScreen, hideOnlineAccountScreens: o.hideOnlineAccountScreens,
    hideLocalAccountScreen: o.hideLocalAccountScreen, hideWirelessSetupInOOBE: o.hideWirelessSetupInOOBE,
    protectYourPC: o.protectYourPC, networkLocation: o.networkLocation,
  };
  const set = Object.fromEntries(Object.entries(screens).filter(([, v]) => v !== undefined));
  return Object.keys(set).length ? { ...screens, ...set } : null;
}

function templateFor(r: RenderedMachine): { file: string; text: string } {
  const name = windowsProfile(r.profile).template;
  if (!name) return loadTemplateFile(DEFAULT_UNATTEND_TEMPLATE, [TEMPLATE_DIR]);
  const origin = originOf(r.prepared.traced.origins, '/windows/template');
  const dir = origin ? path.dirname(path.resolve(origin.source.file)) : process.cwd();
  return loadTemplateFile(name, [path.join(dir, 'templates'), path.join(dir, '..', 'templates'), dir, TEMPLATE_DIR]);
}

/** One machine's unattend.xml and whether it holds secrets (passwords, the provisioning blob, the product key). */
export function renderUnattendFile(r: RenderedMachine, arch: string, identity?: SecretKeeper): { text: string; secret: boolean; pending: boolean } {
  const secrets = unattendSecrets(r, identity);
  return { text: renderUnattend(r, arch, secrets), secret: unattendHasSecrets(secrets), pending: secrets.pending };
}

export function renderUnattend(r: RenderedMachine, arch: string, secrets?: UnattendSecrets): string {
  const t = templateFor(r);
  const data = unattendData(r, arch, secrets ?? unattendSecrets(r));
  try {
    return hb.compile(t.text, { strict: true })(data);
  } catch (err) {
    const e = explain(err as Error, t.text, t.file);
    throw new GhostprepError(`${e.template}:${e.line}:${e.col}: ${e.detail}`, { cause: err });
  }
}
