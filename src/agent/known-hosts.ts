// Reading OpenSSH known_hosts files: host keys by name (for destination
// constraints kept in the vault) and names by host key (for prompts and logs).
// Hashed entries (HashKnownHosts) can be matched by name but never reversed.

import crypto = require('node:crypto');
import fs = require('node:fs');
import os = require('node:os');
import path = require('node:path');
import { matchHostname } from '../ssh/pattern';

export interface KnownHost {
  /** Plain patterns, or null for a hashed entry. */
  names: string[] | null;
  hashed?: { salt: Buffer; hash: Buffer };
  marker: '@cert-authority' | '@revoked' | null;
  keyBlob: Buffer;
}

export function defaultKnownHostsFiles(): string[] {
  return [path.join(os.homedir(), '.ssh', 'known_hosts'), '/etc/ssh/ssh_known_hosts'];
}

export function parseKnownHosts(text: string): KnownHost[] {
  const out: KnownHost[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const fields = line.split(/\s+/);
    let marker: KnownHost['marker'] = null;
    if (fields[0] === '@cert-authority' || fields[0] === '@revoked')
      marker = fields.shift() as KnownHost['marker'];
    if (fields.length < 3) continue;
    const [hosts, , b64] = fields;
    const keyBlob = Buffer.from(b64, 'base64');
    if (keyBlob.length === 0) continue;
    if (hosts.startsWith('|1|')) {
      const [, , salt, hash] = hosts.split('|');
      if (!salt || !hash) continue;
      out.push({
        names: null,
        hashed: { salt: Buffer.from(salt, 'base64'), hash: Buffer.from(hash, 'base64') },
        marker,
        keyBlob,
      });
    } else {
      out.push({ names: hosts.split(','), marker, keyBlob });
    }
  }
  return out;
}

export function readKnownHosts(files = defaultKnownHostsFiles()): KnownHost[] {
  const all: KnownHost[] = [];
  for (const f of files) {
    try {
      all.push(...parseKnownHosts(fs.readFileSync(f, 'utf8')));
    } catch {
      // A missing known_hosts file is normal.
    }
  }
  return all;
}

/** How known_hosts writes a host: `name`, or `[name]:port` off port 22. */
function hostKey(name: string, port?: number): string {
  return port && port !== 22 ? `[${name}]:${port}` : name;
}

/** Does a known_hosts entry name `host` (already lowercased, as ssh and ssh-add lowercase it)? */
function matches(entry: KnownHost, host: string): boolean {
  if (entry.hashed) {
    const h = crypto.createHmac('sha1', entry.hashed.salt).update(host).digest();
    return h.equals(entry.hashed.hash);
  }
  // hostfile.c: match_hostname() over the entry's comma-separated patterns.
  return matchHostname(host, (entry.names ?? []).join(',')) === 1;
}

/** Host keys (and CA keys) known for a host name, as `ssh-add -h` resolves them. */
export function keysForHost(
  entries: KnownHost[],
  name: string,
  port?: number,
): { keyBlob: Buffer; isCA: boolean }[] {
  // ASCII only, as OpenSSH's lowercase() (tolower in the C locale).
  const host = hostKey(
    name.replace(/[A-Z]+/g, (c) => c.toLowerCase()),
    port,
  );
  return entries
    .filter((e) => e.marker !== '@revoked' && matches(e, host))
    .map((e) => ({ keyBlob: e.keyBlob, isCA: e.marker === '@cert-authority' }));
}

/** The first plain name recorded for a host key, if any. */
export function nameForKey(entries: KnownHost[], keyBlob: Buffer): string | undefined {
  for (const e of entries) if (!e.marker && e.names && e.keyBlob.equals(keyBlob)) return e.names[0];
  return undefined;
}
