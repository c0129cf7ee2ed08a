/**
 * Rules every renderer keeps, checked over generated configurations:
 * rename rules never match a virtual device, a default route's metric never
 * spills onto other routes, DHCP follows v2 defaults, bridge ports carry
 * their NetworkManager port section, STP-less bridges carry no delay.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { interpret } from '../../src/network/interpret.js';
import { parseIni } from '../../src/network/renderers/guest.js';
import { DISTROS, VARIANTS, renderTree } from './helpers.js';

const hex = fc.integer({ min: 0, max: 255 }).map((n) => n.toString(16).padStart(2, '0'));
const mac = fc.tuple(hex, hex, hex).map(([a, b, c]) => `52:54:00:${a}:${b}:${c}`);

/** Two cards matched by MAC and renamed, a bond over them, a VLAN on the bond (which inherits a card's MAC). */
const bondedConfig = fc.tuple(mac, mac, fc.boolean()).filter(([a, b]) => a !== b).map(([a, b, bridge]) => ({
  version: 2,
  ethernets: { nic0: { match: { macaddress: a }, 'set-name': 'nic0' }, nic1: { match: { macaddress: b }, 'set-name': 'nic1' } },
  bonds: { bond0: { interfaces: ['nic0', 'nic1'], parameters: { mode: 'active-backup' } } },
  vlans: { 'bond0.100': { id: 100, link: 'bond0', ...(bridge ? {} : { addresses: ['10.100.0.5/24'] }) } },
  ...(bridge ? { bridges: { br0: { interfaces: ['bond0.100'], addresses: ['10.100.0.5/24'] } } } : {}),
}));

function tryRender(config: unknown, renderer: string, distro: (typeof VARIANTS)[number]['distro']) {
  try {
    return renderTree(config, renderer, distro);
  } catch {
    return new Map<string, { text: string }>();
  }
}

describe('network renderer rules', () => {
  it('rename rules match a card\'s permanent MAC or exclude virtual devices, in every renderer', () => {
    fc.assert(fc.property(bondedConfig, (config) => {
      for (const v of VARIANTS) {
        for (const [p, f] of tryRender(config, v.renderer, v.distro)) {
          if (p.endsWith('.link')) {
            const ini = parseIni(f.text);
            expect(ini.get('Match')?.has('MACAddress'), `${v.dir}${p}`).to.equal(false);
            expect(ini.get('Match')?.has('PermanentMACAddress'), `${v.dir}${p}`).to.equal(true);
          }
          if (p.startsWith('/etc/udev/rules.d/')) {
            for (const rule of f.text.split('\n').filter((l) => l.includes('ATTR{address}'))) {
              expect(rule, `${v.dir}${p}`).to.match(/DRIVERS=="[^"]+"/);
              expect(rule, `${v.dir}${p}`).to.include('ATTR{type}=="1"');
            }
          }
        }
      }
    }), { numRuns: 25 });
  });

  const route = fc.record({
    to: fc.constantFrom('10.20.0.0/16', '192.168.7.0/24', '172.16.0.0/12'),
    via: fc.constant('10.0.0.254'),
    metric: fc.option(fc.integer({ min: 1, max: 1000 }), { nil: undefined }),
  });
  const routedConfig = fc.tuple(fc.option(fc.integer({ min: 1, max: 1000 }), { nil: undefined }), fc.uniqueArray(route, { selector: (r) => r.to, maxLength: 3 }))
    .map(([metric, others]) => ({
      metric,
      others,
      config: {
        version: 2,
        ethernets: { eno1: { addresses: ['10.0.0.11/24'], routes: [{ to: 'default', via: '10.0.0.1', ...(metric !== undefined ? { metric } : {}) }, ...others.map((r) => (r.metric === undefined ? { to: r.to, via: r.via } : r))] } },
      },
    }));

  it('NetworkManager: a default route\'s metric goes to route-metric= only when every route has it', () => {
    fc.assert(fc.property(routedConfig, ({ metric, others, config }) => {
      const text = renderTree(config, 'network-manager', DISTROS.rocky9).get('/etc/NetworkManager/system-connections/ghostprep-eno1.nmconnection')!.text;
      const ip = parseIni(text).get('ipv4')!;
      const shared = metric !== undefined && others.every((r) => r.metric === metric);
      if (metric === undefined || shared) {
        expect(ip.get('gateway')).to.deep.equal(['10.0.0.1']);
        expect(ip.get('route-metric')).to.deep.equal(metric === undefined ? undefined : [String(metric)]);
      } else {
        expect(ip.has('gateway')).to.equal(false);
        expect(ip.has('route-metric')).to.equal(false);
        const routes = [...ip.entries()].filter(([k]) => /^route\d+$/.test(k)).flatMap(([, v]) => v);
        expect(routes).to.include(`0.0.0.0/0,10.0.0.1,${metric}`);
      }
      // every other route keeps exactly its own metric
      for (const r of others) {
        const line = [...ip.values()].flat().find((v) => v.startsWith(`${r.to},`));
        expect(line).to.equal([r.to, r.via, r.metric].filter((x) => x !== undefined).join(','));
      }
    }), { numRuns: 100 });
  });

  it('RHEL ifcfg: a default route\'s metric goes to METRIC=/IPV4_ROUTE_METRIC= only when every route has it', () => {
    fc.assert(fc.property(routedConfig, ({ metric, others, config }) => {
      const tree = renderTree(config, 'ifcfg', DISTROS.centos7);
      const kv = tree.get('/etc/sysconfig/network-scripts/ifcfg-eno1')!.text;
      const routeFile = tree.get('/etc/sysconfig/network-scripts/route-eno1')?.text ?? '';
      const shared = metric !== undefined && others.every((r) => r.metric === metric);
      if (metric === undefined || shared) {
        expect(kv).to.include('GATEWAY=10.0.0.1\n');
        expect(kv.includes('IPV4_ROUTE_METRIC=')).to.equal(metric !== undefined);
        expect(routeFile).not.to.include('default');
      } else {
        expect(kv).not.to.match(/^(GATEWAY|METRIC|IPV4_ROUTE_METRIC)=/m);
        expect(routeFile).to.include(`default via 10.0.0.1 dev eno1 metric ${metric}\n`);
      }
    }), { numRuns: 100 });
  });

  it('networkd: DHCPv4 routes at metric 100 with the lease\'s MTU, as netplan does', () => {
    const tree = renderTree({ version: 2, ethernets: { eth0: { dhcp4: true }, eth1: { dhcp6: true } } }, 'networkd', DISTROS.arch);
    const v4 = parseIni(tree.get('/etc/systemd/network/10-ghostprep-eth0.network')!.text);
    expect(v4.get('DHCPv4')).to.deep.equal(new Map([['RouteMetric', ['100']], ['UseMTU', ['true']]]));
    expect(parseIni(tree.get('/etc/systemd/network/10-ghostprep-eth1.network')!.text).has('DHCPv4')).to.equal(false);
  });

  it('NetworkManager: bridge ports carry [bridge-port], bond ports do not', () => {
    const config = { version: 2, ethernets: { eno1: {}, eno2: {}, eno3: {} }, bonds: { bond0: { interfaces: ['eno2', 'eno3'] } }, bridges: { br0: { interfaces: ['eno1'], dhcp4: true } } };
    const tree = renderTree(config, 'network-manager', DISTROS.rocky9);
    const text = (n: string) => tree.get(`/etc/NetworkManager/system-connections/ghostprep-${n}.nmconnection`)!.text;
    expect(text('eno1')).to.match(/\n\[bridge-port\]\n/);
    expect(text('eno2')).not.to.include('[bridge-port]');
    expect(interpret(config).interfaces.map((i) => i.master)).to.deep.equal(['br0', 'bond0', 'bond0', undefined, undefined]);
  });

  it('RHEL ifcfg: with STP off a bridge has no DELAY; with STP on it keeps it', () => {
    const br = (stp: boolean) => renderTree({ version: 2, ethernets: { eno1: {} }, bridges: { br0: { interfaces: ['eno1'], dhcp4: true, parameters: { stp, 'forward-delay': 4 } } } }, 'ifcfg', DISTROS.centos7)
      .get('/etc/sysconfig/network-scripts/ifcfg-br0')!.text;
    expect(br(false)).not.to.match(/^DELAY=/m);
    expect(br(true)).to.match(/^DELAY=4$/m);
  });
});
