/**
 * The network records: the one intermediate network model every renderer
 * reads (src/network/interpret.ts builds it from a validated v2 config), the
 * files a renderer produces, and the renderer record itself
 * (src/network/renderers/ registers one per format; the detection walk, the
 * stale rules and the manual's renderer table all come from these records).
 *
 * Everything in the model is normalized: booleans are booleans, numbers are
 * numbers, MAC addresses are lowercase, "default" routes are 0.0.0.0/0 or
 * ::/0, and interfaces come in a fixed order (kind, then ID) so output is
 * deterministic.
 */
import type { GuestReader } from './backend.js';
import type { Distro } from './distro.js';
import type { FileChange } from './file-change.js';

export type IfaceKind = 'ethernet' | 'bond' | 'bridge' | 'vlan';
export type IpFamily = 4 | 6;

/** Kinds in rendering order: links before the devices built on them. */
export const KIND_ORDER: readonly IfaceKind[] = ['ethernet', 'bond', 'bridge', 'vlan'];

/** The v2 section each kind comes from. */
export const SECTION_OF: Readonly<Record<IfaceKind, string>> = {
  ethernet: 'ethernets',
  bond: 'bonds',
  bridge: 'bridges',
  vlan: 'vlans',
};

export interface Address {
  readonly family: IpFamily;
  /** The address without prefix, in canonical form (2001:db8::11). */
  readonly ip: string;
  readonly prefix: number;
  /** ip/prefix. */
  readonly cidr: string;
}

export interface Route {
  readonly family: IpFamily;
  /** Destination CIDR; a default route is 0.0.0.0/0 or ::/0. */
  readonly to: string;
  readonly isDefault: boolean;
  readonly via?: string;
  readonly metric?: number;
  readonly onLink: boolean;
}

export interface Match {
  readonly name?: string;
  /** Lowercase xx:xx:xx:xx:xx:xx. */
  readonly macaddress?: string;
  readonly driver?: string;
}

/** Bond parameters, v2 names in camelCase; times in milliseconds. */
export interface BondParams {
  readonly mode?: string;
  readonly miiMonitorInterval?: number;
  readonly lacpRate?: string;
  readonly transmitHashPolicy?: string;
  readonly adSelect?: string;
  readonly minLinks?: number;
  readonly upDelay?: number;
  readonly downDelay?: number;
  readonly arpInterval?: number;
  readonly arpIpTargets?: readonly string[];
  /** Interface ID of the primary member. */
  readonly primary?: string;
  readonly primaryReselectPolicy?: string;
  readonly failOverMacPolicy?: string;
  readonly gratuitousArp?: number;
}

/** Bridge parameters; times in seconds. */
export interface BridgeParams {
  readonly stp?: boolean;
  readonly forwardDelay?: number;
  readonly helloTime?: number;
  readonly maxAge?: number;
  readonly ageingTime?: number;
  readonly priority?: number;
}

export interface Iface {
  /** The key in the v2 config (netplan "ID"). */
  readonly id: string;
  readonly kind: IfaceKind;
  /**
   * The kernel interface name once configured: set-name, else a literal
   * match.name, else the ID when there is no match at all. Undefined for an
   * ethernet matched only by MAC/driver/glob without set-name: renderers that
   * need a name (ifcfg, ENI) refuse it with a clear message.
   */
  readonly name: string | undefined;
  readonly match?: Match;
  readonly setName?: string;
  readonly dhcp4: boolean;
  readonly dhcp6: boolean;
  readonly addresses: readonly Address[];
  readonly routes: readonly Route[];
  readonly nameservers: readonly string[];
  readonly search: readonly string[];
  readonly mtu?: number;
  /** Member IDs of a bond or bridge, in config order. */
  readonly members: readonly string[];
  /** ID of the bond/bridge this interface belongs to. */
  readonly master?: string;
  readonly bond?: BondParams;
  readonly bridge?: BridgeParams;
  readonly vlan?: { readonly id: number; readonly link: string };
}

export interface NetworkModel {
  readonly interfaces: readonly Iface[];
}

/** A whole file a renderer produces, before it becomes a WriteChange. */
export interface WholeFile {
  readonly kind: 'file';
  readonly path: string;
  readonly mode: number;
  readonly content: string;
}

/**
 * A change to a file the guest already has (the ENI `source` line, SUSE's
 * netconfig DNS keys). `apply` is pure: current text in (null: absent), new
 * text out (null: delete). planNetwork reads the file once and composes all
 * edits to one path in order.
 */
export interface EditedFile {
  readonly kind: 'edit';
  readonly path: string;
  readonly mode: number;
  readonly reason: string;
  /** Leave the file alone when it is a symlink (resolv.conf managed by resolvconf/resolved). */
  readonly skipIfSymlink?: boolean;
  apply(current: string | null): string | null;
}

export type RenderedFile = WholeFile | EditedFile;

// ------------------------------------------------------------ renderer records

/** What one record's detection found (reason) and every path it looked at. */
export interface Detection {
  /** Why the guest reads this format; undefined when it does not. */
  readonly reason: string | undefined;
  readonly searched: readonly string[];
}

/** What the new configuration claims: kernel names and MAC addresses. */
export interface Claims {
  readonly names: ReadonlySet<string>;
  readonly macs: ReadonlySet<string>;
  /** Paths the renderer writes: never deleted, they are replaced. */
  readonly ours: ReadonlySet<string>;
  /** Ethernets matched by MAC and renamed (set-name): the master's kernel names for them are gone. */
  readonly renamedByMac?: number;
  /** The clone's machine-id, when known: the master's connection UUIDs kept on the clone are re-derived from it. */
  readonly machineId?: string | undefined;
}

/** One row of the manual's renderer table (docs/network.md is generated from these). */
export interface RendererDoc {
  /** A flavour of the format, when the record renders more than one ("RHEL", "SUSE"). */
  readonly flavour?: string;
  /** The files it writes; NAME stands for an interface's kernel name (or ID). */
  readonly files: readonly string[];
  readonly mode: number;
  readonly notes: string;
}

/**
 * A network renderer: everything ghostprep knows about one configuration
 * format, in one place.
 */
export interface Renderer {
  readonly name: string;
  readonly description: string;
  /**
   * Place in the detection walk, lowest first: the first record whose
   * `detect` gives a reason wins (netplan before NetworkManager because
   * netplan drives NetworkManager or networkd itself).
   */
  readonly priority: number;
  /**
   * Directories whose files belong to this format: its own stale rules read
   * them, and files an earlier ghostprep run left there are removed.
   */
  readonly dirs: readonly string[];
  /** Files outside `dirs` that belong to this format and that its stale rules may rewrite (the ENI main file). */
  readonly files?: readonly string[];
  /** Which names in `dirs` ghostprep may have written (default: names holding "ghostprep"). */
  readonly ownNames?: (name: string) => boolean;
  readonly docs: readonly RendererDoc[];
  /** Whether the guest reads this format, and why; with every path looked at. */
  detect(guest: GuestReader): Promise<Detection>;
  /** The files for the model (pure: no guest access). */
  render(model: NetworkModel, distro: Distro, opts?: RenderOptions): RenderedFile[];
  /**
   * The master's files in this format that would fight the new configuration,
   * deleted or rewritten. Runs whichever renderer was chosen: a master file
   * of any format the guest still reads can take a card. Changes only paths
   * under `dirs` or in `files`, which no two records share, so the records'
   * rules never name one path twice and their order does not matter.
   */
  stale(guest: GuestReader, claims: Claims): Promise<FileChange[]>;
  /**
   * What the guest lacks to apply the rendered model (a package the format
   * needs for bonds, bridges or VLANs), as one message naming the fix;
   * undefined when nothing is missing. Not run by `plan` without a target.
   */
  missing?(guest: GuestReader, model: NetworkModel, distro: Distro): Promise<string | undefined>;
}

/** What a rendering may depend on beyond the model and the distro. */
export interface RenderOptions {
  /**
   * The clone's machine-id: connection UUIDs are derived from it, so every
   * clone's connections have UUIDs of their own. Without it (machineId: keep,
   * or no machine), UUIDs are derived from the model alone.
   */
  readonly machineId?: string | undefined;
}
