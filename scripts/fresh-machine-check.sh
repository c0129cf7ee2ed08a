#!/bin/sh
# Proves that `npm test`'s pretest sets up a fresh Debian machine: a minimal
# Debian bookworm (debootstrap --variant=minbase: no libguestfs, no qemu, no
# ssh-keygen, no git), the host's node 20 and npm copied in (Debian's nodejs
# is 18), a clone of this checkout's HEAD, then as root inside the chroot:
#
#   npm ci                        the npm dependencies
#   node scripts/test-deps.mjs    must install every package of .ci/apt-packages.d/
#   npm run build
#   node scripts/test.mjs dist/test/unit/   the fast specs (no appliance: CPU)
#
# and a second `node scripts/test-deps.mjs`, which must find nothing missing.
# Each step's time and the packages installed are printed at the end.
#
# Usage (root, Debian host with debootstrap):
#   scripts/fresh-machine-check.sh
# Environment:
#   GHOSTPREP_FRESH_CACHE   where the minbase tarball is kept (default .cache/fresh-chroot);
#                           the chroot itself is unpacked fresh from it on every run
#   GHOSTPREP_DEBIAN_MIRROR the Debian mirror (default: debootstrap's own default for the suite)
#   GHOSTPREP_FRESH_KEEP=1  keep the chroot directory afterwards (its path is printed)
#   GHOSTPREP_FRESH_SPECS   the specs run inside (default dist/test/unit/)
set -eu

REPO=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${GHOSTPREP_FRESH_CACHE:-$REPO/.cache/fresh-chroot}
MIRROR=${GHOSTPREP_DEBIAN_MIRROR:-}
SPECS=${GHOSTPREP_FRESH_SPECS:-dist/test/unit/}
SUITE=bookworm
TARBALL=$CACHE/$SUITE-minbase.tar

if [ "$(id -u)" != 0 ]; then echo "fresh-machine-check: needs root (debootstrap, chroot, mounts)" >&2; exit 2; fi
for tool in debootstrap chroot git node npm; do
  command -v "$tool" >/dev/null || { echo "fresh-machine-check: $tool not found on this host" >&2; exit 2; }
done

now() { date +%s; }
T0=$(now)
STEPS=""
step() { STEPS="$STEPS
  $1: $(( $(now) - $2 )) s"; }

mkdir -p "$CACHE"
if [ ! -s "$TARBALL" ]; then
  t=$(now)
  echo "== debootstrap --variant=minbase $SUITE from ${MIRROR:-debootstrap's default mirror} (once; kept in $TARBALL)"
  BUILD=$(mktemp -d "$CACHE/build.XXXXXX")
  debootstrap --variant=minbase "$SUITE" "$BUILD" ${MIRROR:+"$MIRROR"} >"$CACHE/debootstrap.log" 2>&1 \
    || { tail -20 "$CACHE/debootstrap.log" >&2; rm -rf "$BUILD"; exit 1; }
  tar --numeric-owner -C "$BUILD" -cf "$TARBALL.tmp" . && mv "$TARBALL.tmp" "$TARBALL"
  rm -rf "$BUILD"
  step "debootstrap (cached afterwards)" "$t"
fi

ROOT=$(mktemp -d /tmp/ghostprep-fresh.XXXXXX)
MOUNTS=""
cleanup() {
  for m in $MOUNTS; do umount -l "$m" 2>/dev/null || true; done
  if [ "${GHOSTPREP_FRESH_KEEP:-}" = 1 ]; then echo "fresh-machine-check: chroot kept in $ROOT"; else rm -rf "$ROOT"; fi
}
trap cleanup EXIT INT TERM

t=$(now)
tar --numeric-owner -C "$ROOT" -xf "$TARBALL"
# after the unpacking, which gives / the mode of the (0700) build dir: package scripts run as
# system users (munge's postinst as munge, apt's downloads as _apt) and must reach / like on a machine
chmod 755 "$ROOT"
for m in proc sys dev dev/pts; do
  mount --bind "/$m" "$ROOT/$m"
  MOUNTS="$ROOT/$m $MOUNTS"
done
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
# the mirror debootstrap used (its sources.list) unless one was given, plus the suite's updates
[ -n "$MIRROR" ] || MIRROR=$(awk '$1 == "deb" { print $2; exit }' "$ROOT/etc/apt/sources.list")
printf 'deb %s %s main\ndeb %s %s-updates main\n' "$MIRROR" "$SUITE" "$MIRROR" "$SUITE" >"$ROOT/etc/apt/sources.list"
# as in a container image: package scripts do not start services (munge, slurmd) in the chroot
printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d" && chmod 755 "$ROOT/usr/sbin/policy-rc.d"
# the host's node and npm (a Node 20 that Debian bookworm does not ship)
NODE=$(command -v node)
NPM_DIR=$(cd "$(dirname "$(readlink -f "$(command -v npm)")")/.." && pwd)
cp "$(readlink -f "$NODE")" "$ROOT/usr/local/bin/node"
mkdir -p "$ROOT/usr/local/lib/node_modules"
cp -a "$NPM_DIR" "$ROOT/usr/local/lib/node_modules/npm"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$ROOT/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$ROOT/usr/local/bin/npx"
# a host that reaches the npm registry through a TLS proxy names its CA in NODE_EXTRA_CA_CERTS: the chroot trusts it too
CA_ENV=""
if [ -n "${NODE_EXTRA_CA_CERTS:-}" ] && [ -f "$NODE_EXTRA_CA_CERTS" ]; then
  cp "$NODE_EXTRA_CA_CERTS" "$ROOT/usr/local/share/host-extra-ca.crt"
  CA_ENV="NODE_EXTRA_CA_CERTS=/usr/local/share/host-extra-ca.crt"
fi
# under /srv, readable by every user like a CI checkout: a unit test runs a node process as nobody on it
git clone -q "$REPO" "$ROOT/srv/ghostprep"
echo "== chroot $ROOT: $(cat "$ROOT/etc/debian_version"), node $(chroot "$ROOT" /usr/local/bin/node --version), $(chroot "$ROOT" dpkg-query -W -f='.\n' | wc -l) packages, HEAD $(git -C "$REPO" rev-parse --short HEAD)"
step "unpack, node, clone" "$t"

inside() { chroot "$ROOT" /usr/bin/env -i HOME=/root PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 $CA_ENV \
  LIBGUESTFS_BACKEND=direct LIBGUESTFS_BACKEND_SETTINGS=force_tcg /bin/sh -c "cd /srv/ghostprep && $1"; }

chroot "$ROOT" dpkg-query -W -f='${Package}\n' | sort >"$ROOT/tmp/packages-before"
t=$(now); echo "== npm ci"; inside 'npm ci --no-audit --no-fund'; step "npm ci" "$t"
t=$(now); echo "== node scripts/test-deps.mjs (as root: installs the packages)"; inside 'node scripts/test-deps.mjs'; step "test-deps (apt-get install)" "$t"
chroot "$ROOT" dpkg-query -W -f='${Package}\n' | sort >"$ROOT/tmp/packages-after"
t=$(now); echo "== node scripts/test-deps.mjs again (nothing missing)"; inside 'node scripts/test-deps.mjs'; step "test-deps again" "$t"
t=$(now); echo "== npm run build"; inside 'npm run build >/dev/null'; step "build" "$t"
t=$(now); echo "== node scripts/test.mjs $SPECS"; inside "node scripts/test.mjs $SPECS"; step "specs $SPECS" "$t"

LISTED=$(cat "$REPO"/.ci/apt-packages.d/*.txt | sed 's/#.*//' | tr -s ' \t' '\n\n' | grep -v '^$' | sort -u | wc -l)
ADDED=$(comm -13 "$ROOT/tmp/packages-before" "$ROOT/tmp/packages-after" | wc -l)
echo "== fresh-machine-check passed: $LISTED packages listed in .ci/apt-packages.d, $ADDED Debian packages installed with their dependencies;$STEPS
  total: $(( $(now) - T0 )) s"
