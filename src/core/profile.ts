/** Shapes of profiles and inventories after schema validation (schemas/; docs/profiles.md, docs/inventory.md). */
import type { StorageProfile } from './device-identity.js';
export type MachineIdMode = 'generate' | 'derive' | 'keep';
export type HostKeyType = 'ed25519' | 'rsa' | 'ecdsa';

export interface Site {
  domain?: string;
  timezone?: string;
  gateway?: string;
  dns?: string[];
  search?: string[];
  ntp?: string | string[];
  /** File holding the site secret for `machineId: derive` (relative to the profile). */
  secretFile?: string;
}

export interface UserSpec {
  name: string;
  uid?: number;
  gid?: number;
  groups?: string[];
  shell?: string;
  home?: string;
  gecos?: string;
  passwordHash?: string;
  authorizedKeys?: string[];
}

export interface FileSpec {
  path: string;
  template?: string;
  content?: string;
  source?: string;
  mode?: string;
  owner?: string;
  group?: string;
}

export interface FirstbootSpec { name: string; run: string }

/** Block-device identity per clone (docs/storage.md, docs/storage-lvm-luks.md). */
export interface StorageSpec extends StorageProfile {
  /** New filesystem UUIDs and GPT GUIDs for each clone, every reference rewritten (default false). */
  newUuids?: boolean;
}

export interface Profile {
  profile: string;
  extends?: string | string[];
  description?: string;
  site?: Site;
  hostname?: string;
  machineId?: MachineIdMode;
  ssh?: {
    hostKeys?: HostKeyType[];
    authorizedKeys?: Record<string, string[]>;
  };
  users?: UserSpec[];
  timezone?: string;
  network?: Record<string, unknown>;
  networkRenderer?: string;
  /** `nocloud`: a per-clone cloud-init NoCloud seed (docs/network.md); absent: no seed. */
  cloudInit?: 'nocloud';
  files?: FileSpec[];
  delete?: string[];
  /** Setuid, setgid and world-writable modes under files: are wanted (refused otherwise). */
  allowSpecialModes?: boolean;
  firstboot?: FirstbootSpec[];
  /** Block-device identity per clone (docs/storage.md). */
  storage?: StorageSpec;
  vars?: Record<string, unknown>;
}

export interface MachineEntry {
  name: string;
  mac?: string;
  ip?: string;
  profile?: string;
  hostname?: string;
  target?: string;
  network?: Record<string, unknown>;
  vars?: Record<string, unknown>;
}

export interface Inventory {
  defaults?: { profile?: string; vars?: Record<string, unknown> };
  vars?: Record<string, unknown>;
  machines: MachineEntry[];
}
