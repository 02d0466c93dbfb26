// The audit log: one JSON line per sign request, allowed or refused, and per
// change refused from a forwarded connection, in a 0600 file rotated at a size
// limit (the previous file is kept as `.1`).

import fs = require('node:fs');

export interface AuditRecord {
  time: string;
  /** The request's message name (REMOVE_ALL_IDENTITIES, LOCK…); absent for a sign request. */
  request?: string;
  key: string; // fingerprint ('' when the request names no key)
  comment: string;
  requester: { pid?: number; uid?: number; command?: string };
  hops: string[];
  forwarded: boolean;
  user?: string;
  /** What was signed (describeSignedData), e.g. "sign a git commit or tag (namespace git)". */
  purpose?: string;
  /** Allowed without a prompt, by this approval window (issue 14: still one record per use). */
  approval?: number;
  decision: 'allowed' | 'refused';
  reason?: string;
}

export const DEFAULT_AUDIT_LIMIT = 1024 * 1024;

export class AuditLog {
  private size: number;

  constructor(
    readonly file: string,
    private readonly limit = DEFAULT_AUDIT_LIMIT,
  ) {
    try {
      this.size = fs.statSync(file).size;
    } catch {
      this.size = 0;
    }
  }

  /** Append one record. Synchronous: a record must not be lost if the agent is killed next. */
  append(record: AuditRecord): void {
    const line = JSON.stringify(record) + '\n';
    const bytes = Buffer.byteLength(line);
    if (this.size + bytes > this.limit && this.size > 0) this.rotate();
    const fd = fs.openSync(
      this.file,
      fs.constants.O_WRONLY |
        fs.constants.O_APPEND |
        fs.constants.O_CREAT |
        fs.constants.O_NOFOLLOW,
      0o600,
    );
    try {
      fs.writeSync(fd, line);
    } finally {
      fs.closeSync(fd);
    }
    this.size += bytes;
  }

  private rotate(): void {
    try {
      fs.renameSync(this.file, this.file + '.1');
    } catch {
      // Nothing to rotate.
    }
    this.size = 0;
  }
}

/** Read records back (oldest first), from the rotated file and then the current one. */
export function readAudit(file: string): AuditRecord[] {
  const out: AuditRecord[] = [];
  for (const f of [file + '.1', file]) {
    let text: string;
    try {
      text = fs.readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      if (!line) continue;
      try {
        out.push(JSON.parse(line) as AuditRecord);
      } catch {
        // A line torn by a crash: skip it.
      }
    }
  }
  return out;
}
