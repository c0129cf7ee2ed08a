/**
 * What a machine's profile asks of its LVM and LUKS volumes (`storage.lvm`,
 * `storage.luks`), with templates rendered: the device-level identity a
 * backend gives a clone before its files are planned.
 */

/** The `storage` key of a rendered profile (schemas/profile.schema.json), as written. */
export interface StorageProfile {
  lvm?: { newUuids?: boolean; vgName?: string };
  luks?: { newUuid?: boolean; key?: { file: string } | { generate: true }; removeMasterKeys?: boolean; reencrypt?: boolean };
}

/** `storage.lvm`: new PV and VG UUIDs (as `vgimportclone` gives), and optionally a VG name of the clone's own. */
export interface LvmIdentitySpec {
  readonly newUuids: boolean;
  /** The clone's volume group name (the image must hold exactly one VG); unchanged when absent. */
  readonly vgName?: string;
}

/** `storage.luks`: a LUKS UUID and a passphrase of the clone's own. */
export interface LuksIdentitySpec {
  readonly newUuid: boolean;
  /** The clone's own passphrase, added in a free key slot; none when absent. */
  readonly newKey?: string;
  /** Remove every key slot the master had, so that only `newKey` opens the clone (needs `newKey`). */
  readonly removeMasterKeys: boolean;
  /**
   * A volume key of the clone's own: `cryptsetup reencrypt` of the whole volume in the
   * appliance, with `newKey` (needs `newKey`; LUKS2 only). The master's slots go with
   * the old volume key.
   */
  readonly reencrypt?: boolean;
}

/** Device-level identity of one target. */
export interface DeviceIdentitySpec {
  readonly lvm?: LvmIdentitySpec;
  readonly luks?: LuksIdentitySpec;
}

/**
 * Identity changes below the filesystems, made (apply) or to be made (plan)
 * before a guest's files are planned: the files that name the old VG or LUKS
 * UUID are rewritten from these.
 */
export interface DeviceRenames {
  /** Volume group: old name -> new name. */
  readonly vgs: ReadonlyMap<string, string>;
  /** Physical volume: old UUID -> new UUID (known after apply only). */
  readonly pvUuids: ReadonlyMap<string, string>;
  /** LUKS volume: old UUID -> new UUID (known after apply only: a plan cannot know the new random UUID). */
  readonly luksUuids: ReadonlyMap<string, string>;
  /** What a plan says of device changes that rewrite no file (a LUKS re-encryption and its cost). */
  readonly notes?: readonly string[];
}
