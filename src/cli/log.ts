// `tsagent log [--follow] [--json] [--file PATH]`: read the agent's audit log
// (one JSON line per sign request, see src/agent/audit.ts), the rotated `.1`
// file first. Human lines by default, the raw JSON lines with --json; with
// --follow, keep printing new records (across rotations) until interrupted.

import fs = require('node:fs');
import path = require('node:path');
import type { AuditRecord } from '../agent/audit';
import { auditLogPath } from '../daemon/paths';
import { errorMessage } from '../ssh/error';
import { escapeText } from '../ssh/escape';
import { UsageError } from './errors';

const USAGE = 'usage: tsagent log [--follow] [--json] [--file path]';

const POLL_MS = 250;

interface LogOptions {
  follow: boolean;
  json: boolean;
  file?: string;
}

function parseArgs(argv: string[]): LogOptions | 'help' {
  const o: LogOptions = { follow: false, json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-h' || a === '--help') return 'help';
    else if (a === '-f' || a === '--follow') o.follow = true;
    else if (a === '--json') o.json = true;
    else if (a === '--file') {
      if (i + 1 >= argv.length) throw new UsageError('option --file needs a path');
      o.file = argv[++i];
    } else if (a.startsWith('--file=')) o.file = a.slice('--file='.length);
    else throw new UsageError(`unknown argument ${JSON.stringify(a)}`);
  }
  if (o.file === '') throw new UsageError('option --file needs a path');
  return o;
}

/** Text from the log (a hostile key comment, a command line) never reaches the terminal raw. */
const clean = (s: unknown): string => escapeText(String(s ?? ''));

/** One record as a line: time, decision, key, requester, hops, user, reason. */
export function formatRecord(r: Partial<AuditRecord>): string {
  const parts = [clean(r.time), clean(r.decision ?? '?'), clean(r.key ?? '?')];
  if (r.comment) parts.push(`(${clean(r.comment)})`);
  const req = r.requester ?? {};
  const who: string[] = [];
  if (req.pid !== undefined) who.push(`pid ${clean(req.pid)}`);
  if (req.uid !== undefined) who.push(`uid ${clean(req.uid)}`);
  if (req.command) who.push(`[${clean(req.command)}]`);
  parts.push(who.length > 0 ? `by ${who.join(' ')}` : 'by unknown process');
  const hops = Array.isArray(r.hops) ? r.hops.map(clean) : [];
  if (hops.length > 0)
    parts.push(`${r.forwarded ? 'forwarded' : 'login'} ${hops.join(' \u2192 ')}`);
  else if (r.forwarded) parts.push('forwarded');
  else parts.push('local');
  if (r.user) parts.push(`as ${clean(r.user)}`);
  if (r.purpose) parts.push(`to ${clean(r.purpose)}`);
  if (r.approval !== undefined) parts.push(`covered by approval ${clean(r.approval)}`);
  if (r.reason) parts.push(`reason: ${clean(r.reason)}`);
  return parts.join(' ');
}

/** A writer that resolves once the text is handed to the OS; rejects on EPIPE etc. */
function writer(): (s: string) => Promise<void> {
  return (s) =>
    new Promise((resolve, reject) => {
      if (s === '') return resolve();
      process.stdout.write(s, (err) => (err ? reject(err) : resolve()));
    });
}

/** Turns complete lines of the log into output text (partial lines wait for the rest). */
class LineSink {
  private partial = '';
  constructor(private readonly json: boolean) {}

  /** Output for a chunk of the file. */
  push(chunk: string): string {
    const text = this.partial + chunk;
    const lines = text.split('\n');
    this.partial = lines.pop() ?? '';
    return lines.map((l) => this.line(l)).join('');
  }

  /** Output for what is left at the end of a file (a torn last line is dropped). */
  flush(): string {
    const rest = this.partial;
    this.partial = '';
    // Only a line that parses is complete: the writer may be half-way through it.
    try {
      JSON.parse(rest);
      return this.line(rest);
    } catch {
      return '';
    }
  }

  private line(l: string): string {
    if (l.trim() === '') return '';
    if (this.json) return l + '\n';
    try {
      const rec = JSON.parse(l) as unknown;
      if (rec && typeof rec === 'object') return formatRecord(rec as Partial<AuditRecord>) + '\n';
    } catch {
      // A line torn by a crash: skip it, as readAudit does.
    }
    return '';
  }
}

function readFileIfAny(f: string): string | null {
  try {
    return fs.readFileSync(f, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/** Print the whole log (rotated part first). Returns whether any file existed. */
async function printAll(file: string, json: boolean, out: (s: string) => Promise<void>) {
  let found = false;
  for (const f of [file + '.1', file]) {
    const text = readFileIfAny(f);
    if (text === null) continue;
    found = true;
    const sink = new LineSink(json);
    await out(sink.push(text) + sink.flush());
  }
  return found;
}

/**
 * Print the current file and follow it like `tail -F`: read what is appended; when the agent rotates
 * it (renames it to `.1` and starts a new one), finish the old file through the
 * open descriptor, then continue at the start of the new one.
 */
async function follow(
  file: string,
  json: boolean,
  out: (s: string) => Promise<void>,
  stopped: Promise<void>,
): Promise<void> {
  let fd: number | null = null;
  let ino = -1;
  let offset = 0;
  let sink = new LineSink(json);
  let stop = false;
  void stopped.then(() => (stop = true));

  const readMore = async (): Promise<void> => {
    if (fd === null) return;
    const buf = Buffer.alloc(64 * 1024);
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, offset);
      if (n <= 0) break;
      offset += n;
      await out(sink.push(buf.subarray(0, n).toString('utf8')));
    }
  };

  const open = (): boolean => {
    try {
      fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
    } catch {
      fd = null;
      return false;
    }
    ino = fs.fstatSync(fd).ino;
    offset = 0;
    sink = new LineSink(json);
    return true;
  };

  // From the start of the current file: records written while we start are not missed.
  open();

  try {
    while (!stop) {
      await readMore();
      let st: fs.Stats | null = null;
      try {
        st = fs.statSync(file);
      } catch {
        st = null;
      }
      if (fd !== null && (st === null || st.ino !== ino)) {
        // Rotated (or removed): drain the old file, then switch.
        await readMore();
        await out(sink.flush());
        fs.closeSync(fd);
        fd = null;
      } else if (fd !== null && st !== null && st.size < offset) {
        // Truncated in place: start over.
        offset = 0;
        sink = new LineSink(json);
      }
      if (fd === null && st !== null && open()) continue;
      await Promise.race([stopped, new Promise((r) => setTimeout(r, POLL_MS))]);
    }
  } finally {
    if (fd !== null) fs.closeSync(fd);
  }
}

export async function runLog(argv: string[]): Promise<number> {
  let o: LogOptions | 'help';
  try {
    o = parseArgs(argv);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`tsagent log: ${e.message}\n${USAGE}\n`);
    return 2;
  }
  if (o === 'help') {
    process.stdout.write(
      `${USAGE}\n\n` +
        'Print the agent audit log: one line per sign request, allowed or refused.\n' +
        '  --follow, -f  keep printing new records until interrupted\n' +
        '  --json        print the raw JSON lines\n' +
        `  --file path   the log to read (default: ${auditLogPath()})\n`,
    );
    return 0;
  }
  const file = o.file ? path.resolve(o.file) : auditLogPath();
  const out = writer();
  // EPIPE also arrives as an 'error' event; the write callback reports it.
  const ignore = () => {};
  process.stdout.on('error', ignore);
  try {
    if (!o.follow) {
      if (!(await printAll(file, o.json, out))) {
        process.stderr.write(`tsagent log: no audit log at ${file}\n`);
        return 1;
      }
      return 0;
    }
    const rotated = readFileIfAny(file + '.1');
    if (rotated !== null) {
      const sink = new LineSink(o.json);
      await out(sink.push(rotated) + sink.flush());
    }
    let onSignal: () => void = () => {};
    const stopped = new Promise<void>((resolve) => (onSignal = resolve));
    const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
    for (const s of signals) process.on(s, onSignal);
    try {
      await follow(file, o.json, out, stopped);
    } finally {
      for (const s of signals) process.off(s, onSignal);
    }
    return 0;
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    // `tsagent log | head`: the reader went away; that is not an error.
    if (err.code === 'EPIPE') return 0;
    process.stderr.write(`tsagent log: ${errorMessage(err)}\n`);
    return 1;
  } finally {
    process.stdout.off('error', ignore);
  }
}
