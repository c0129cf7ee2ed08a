import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import Ajv2020 from 'ajv/dist/2020.js';
import { ROOT, caseNames, loadCase } from './helpers.js';

const schema = JSON.parse(readFileSync(path.join(ROOT, 'schemas', 'network-v2.schema.json'), 'utf8'));
const ajv = new Ajv2020.default({ allErrors: true, strict: true });
const validate = ajv.compile(schema);
const errors = (v: unknown) => (validate(v) ? [] : validate.errors!.map((e) => `${e.instancePath} ${e.message}`));

describe('network-v2 schema', () => {
  it('has the published $id and draft 2020-12', () => {
    expect(schema.$id).to.equal('https://ghostprep.dev/schemas/network-v2.schema.json');
    expect(schema.$schema).to.equal('https://json-schema.org/draft/2020-12/schema');
  });
  for (const name of caseNames()) it(`accepts golden case ${name}`, () => expect(errors(loadCase(name))).to.deep.equal([]));
  it('rejects unknown keys everywhere, with their location', () => {
    const bad = { version: 2, wifis: {}, ethernets: { lan: { gateway4: '10.0.0.1', match: { mac: 'x' }, routes: [{ to: 'default', via: '10.0.0.1', table: 5 }], nameservers: { options: [] } } }, bonds: { b: { interfaces: ['lan'], parameters: { speed: 1 } } } };
    expect(errors(bad)).to.have.members([
      ' must NOT have additional properties',
      '/ethernets/lan must NOT have additional properties',
      '/ethernets/lan/match must NOT have additional properties',
      '/ethernets/lan/routes/0 must NOT have additional properties',
      '/ethernets/lan/nameservers must NOT have additional properties',
      '/bonds/b/parameters must NOT have additional properties',
    ]);
  });
  it('accepts rendered template values (strings for numbers, booleans and lists) and rejects wrong types', () => {
    expect(errors({ version: 2, ethernets: { lan: { mtu: '9000', dhcp4: 'true', nameservers: { addresses: '10.0.0.2' } } } })).to.deep.equal([]);
    expect(errors({ version: 2, ethernets: { lan: { mtu: 'big' } } })).to.not.deep.equal([]);
    expect(errors({ version: 2, ethernets: { lan: { mtu: 1500.5 } } })).to.not.deep.equal([]);
    expect(errors({ version: 2, ethernets: { lan: { dhcp4: 'maybe' } } })).to.not.deep.equal([]);
    expect(errors({ version: 3 })).to.not.deep.equal([]);
  });
  it('requires vlan id/link and bond interfaces; validates enums', () => {
    expect(errors({ version: 2, vlans: { v: { id: 5 } } })).to.deep.equal(["/vlans/v must have required property 'link'"]);
    expect(errors({ version: 2, bonds: { b: {} } })).to.deep.equal(["/bonds/b must have required property 'interfaces'"]);
    expect(errors({ version: 2, bonds: { b: { interfaces: ['x'], parameters: { mode: 'lacp' } } } })).to.deep.equal(['/bonds/b/parameters/mode must be equal to one of the allowed values']);
  });
});
