/**
 * What `audit --json` of overlay clones deployed without `storage.newUuids`
 * must say: every per-machine identity unique, and the only values shared
 * are the base image's disk identities (its filesystem UUIDs and GPT GUIDs,
 * which each overlay clone inherits unless the profile asks for new ones).
 */
import { expect } from 'chai';

export const BASE_DISK_KINDS = ['filesystem-uuid', 'gpt-disk-guid', 'gpt-partition-guid'] as const;

export interface AuditJson {
  targets: number;
  unique: boolean;
  errors: unknown[];
  duplicates: Array<{ kind: string; value: string; targets: string[] }>;
}

/** `status`/`stdout` of an audit of `n` overlay clones of one base: exit 5 for the base's disk identities only, shared by all `n`. */
export function expectOnlyBaseDiskShared(status: number | null, stdout: string, n: number): AuditJson {
  const a = JSON.parse(stdout) as AuditJson;
  expect(a.targets).to.equal(n);
  expect(a.errors).to.deep.equal([]);
  expect(a.duplicates.filter((d) => !(BASE_DISK_KINDS as readonly string[]).includes(d.kind)), 'per-machine identities are unique').to.deep.equal([]);
  expect(a.duplicates.map((d) => d.kind), 'the base filesystem UUID is reported as shared').to.include('filesystem-uuid');
  for (const d of a.duplicates) expect(d.targets, `${d.kind} ${d.value}`).to.have.length(n);
  expect(status, 'exit 5: shared identity').to.equal(5);
  return a;
}
