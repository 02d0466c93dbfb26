// known_hosts as the agent needs it on every prompt and audit record: parsed
// once, and parsed again only when one of the files changes (mtime, size or
// inode), not on every sign request or every directory event.

import fs = require('node:fs');
import { defaultKnownHostsFiles, KnownHost, parseKnownHosts } from '../agent/known-hosts';

export interface KnownHostsSource {
  files: string[];
  /** stat's fields that tell a changed file; null if it is not there. */
  stat(file: string): { mtimeMs: number; size: number; ino: number } | null;
  read(file: string): string;
}

const realSource = (files: string[]): KnownHostsSource => ({
  files,
  stat: (f) => {
    try {
      const st = fs.statSync(f);
      return { mtimeMs: st.mtimeMs, size: st.size, ino: st.ino };
    } catch {
      return null;
    }
  },
  read: (f) => fs.readFileSync(f, 'utf8'),
});

export class KnownHostsCache {
  private stamp = '';
  private entries: KnownHost[] = [];
  private readonly source: KnownHostsSource;

  constructor(source: Partial<KnownHostsSource> = {}) {
    this.source = { ...realSource(source.files ?? defaultKnownHostsFiles()), ...source };
  }

  private currentStamp(): string {
    return JSON.stringify(this.source.files.map((f) => this.source.stat(f)));
  }

  /** Has a file changed since the last entries()? */
  changed(): boolean {
    return this.currentStamp() !== this.stamp;
  }

  /** The entries of every file, re-read only if a file changed. */
  get(): KnownHost[] {
    const stamp = this.currentStamp();
    if (stamp === this.stamp) return this.entries;
    const all: KnownHost[] = [];
    for (const f of this.source.files) {
      try {
        all.push(...parseKnownHosts(this.source.read(f)));
      } catch {
        // A missing known_hosts file is normal.
      }
    }
    this.stamp = stamp;
    this.entries = all;
    return all;
  }
}
