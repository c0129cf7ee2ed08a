import { hostname } from 'node:os';

/** Whether process `pid` exists on this host (EPERM: it does, owned by someone else). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * The owner line of a lock file: "PID HOST". The host matters where a state dir,
 * library or known_hosts file sits on a filesystem shared by several machines
 * (the shards of a Slurm array): a pid means nothing on another host.
 */
export function lockOwnerLine(): string {
  return `${process.pid} ${hostname()}\n`;
}

/** Who holds a lock, from its owner line ("PID HOST"; a bare "PID" from older versions is this host's). */
export interface LockOwner { readonly pid: number; readonly host: string; readonly here: boolean }

export function parseLockOwner(text: string): LockOwner | undefined {
  const m = /^\s*(\d+)(?:\s+(\S+))?\s*$/.exec(text);
  if (!m) return undefined;
  const host = m[2] ?? hostname();
  return { pid: Number(m[1]), host, here: host === hostname() };
}

/**
 * Whether the holder of a lock is gone: its process no longer runs on this host.
 * A holder on another host is never judged gone (its processes cannot be seen
 * from here): such a lock waits, and names its host, until a person removes it.
 */
export function lockHolderGone(owner: LockOwner): boolean {
  return owner.here && !processAlive(owner.pid);
}

/** "pid 123" here, "pid 123 on host h2" elsewhere, for messages. */
export function describeLockOwner(owner: LockOwner | undefined): string {
  if (!owner) return 'an unknown process';
  return owner.here ? `pid ${owner.pid}` : `pid ${owner.pid} on host ${owner.host}`;
}
