/**
 * Counts of the trust suite (test/trust/): every test adds what it tried,
 * and test/trust/summary.test.ts prints one line at the end of the run.
 */
export const trustCounts = {
  /** Broken profiles/inventories/templates validated (fixtures/bad corpus plus generated ones). */
  badInputs: 0,
  /** Hostile guest fixtures applied to, by backend. */
  hostileRootfs: 0,
  hostileImages: 0,
  /** kill -9 rounds of a deploy, each followed by a resumed run. */
  interruptionRounds: 0,
  /** fast-check runs (generated cases) over all properties. */
  propertyRuns: 0,
  /** CLI outputs, files and process command lines scanned for secrets. */
  outputsScanned: 0,
  secretsChecked: 0,
};

export type TrustCount = keyof typeof trustCounts;

export function count(what: TrustCount, n = 1): void {
  trustCounts[what] += n;
}
