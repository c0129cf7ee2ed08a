/**
 * Prints the whole network boot matrix (stack x case, PASS/FAIL, boot seconds) that the
 * stack specs appended to the shared results file; run it after them.
 */
import { MATRIX_FILE, matrixTable } from '../../helpers/boot-network.js';
import { SKIP_BOOT } from '../../helpers/boot.js';

describe('boot matrix: summary', () => {
  it('prints the network boot matrix', function () {
    if (SKIP_BOOT) this.skip();
    console.log(`\n      network boot matrix (${MATRIX_FILE}):\n${matrixTable().split('\n').map((l) => `      ${l}`).join('\n')}\n`);
  });
});
