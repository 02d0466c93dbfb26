// Text that came from outside (a request, a key comment, a process's command
// line, a log line) made safe to show: nothing in it can move the cursor, end a
// line, change colours or titles, or reorder what follows (bidi overrides).
// Every such character becomes a visible escape; a backslash is doubled so an
// escape can never be forged by the text itself.

// C0, DEL and C1 controls (Cc), format characters incl. bidi controls and
// zero-width ones (Cf), line/paragraph separators (Zl, Zp), lone surrogates (Cs).
const UNSAFE = /[\\\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/gu;

const NAMED: Record<string, string> = { '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t' };

function escapeChar(c: string): string {
  const named = NAMED[c];
  if (named) return named;
  const cp = c.codePointAt(0) ?? 0;
  return cp < 0x100 ? `\\x${cp.toString(16).padStart(2, '0')}` : `\\u{${cp.toString(16)}}`;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * A string or bytes, escaped for display on one line. Bytes that are not valid
 * UTF-8 are shown as `\xNN` each (never replaced by U+FFFD, which would hide them).
 */
export function escapeText(text: string | Uint8Array): string {
  if (typeof text === 'string') return text.replace(UNSAFE, escapeChar);
  try {
    return utf8.decode(text).replace(UNSAFE, escapeChar);
  } catch {
    let out = '';
    for (const b of text)
      out +=
        b >= 0x20 && b < 0x7f && b !== 0x5c
          ? String.fromCharCode(b)
          : escapeChar(String.fromCharCode(b));
    return out;
  }
}

/** A name from the input, quoted and escaped for an error or log message (never raw). */
export function quoted(name: string | Uint8Array): string {
  return `"${escapeText(name)}"`;
}
