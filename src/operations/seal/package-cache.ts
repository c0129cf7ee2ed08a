import { removalOperation } from './remove.js';

/** remove package-manager caches (apt, dnf/yum, zypper, pacman, apk). */
export const sealPackageCache = removalOperation({
  name: 'package-cache', description: 'remove package-manager caches (apt, dnf/yum, zypper, pacman, apk)', defaultEnabled: false, guests: ['linux'], reason: 'package cache',
  patterns: ['/var/cache/apt/archives/*.deb', '/var/cache/apt/*.bin', '/var/cache/dnf/*', '/var/cache/yum/*', '/var/cache/zypp/packages/*', '/var/cache/pacman/pkg/*', '/var/cache/apk/*'],
});
