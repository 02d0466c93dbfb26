// What a resident agent costs beside Node's own floor (`node -e 0`). Three V8
// settings, measured with bench/memory.ts and /proc/PID/smaps:
//
// - No compiler but the interpreter until the agent is busy. TurboFan's first
//   optimization pages in about 3.4 MB of the node binary's compiler code
//   (v8::internal::compiler), for good, and start-up alone makes functions hot
//   enough (require()'s path handling, Node's argument validators): with
//   TurboFan back on at listen, whether the first request then set one off was
//   luck. Sparkplug's code for start-up's functions was another 0.2 MB. An
//   agent that signs now and then runs well on the interpreter; a burst of
//   messages (BUSY_MESSAGES within BUSY_WINDOW_MS) turns both back on, as the
//   request path needs under load (without TurboFan ed25519 signing at 64
//   connections is a third slower).
// - The young generation never grows: it stays at V8's initial 1 MB
//   semi-spaces (2 MB in all). Under load V8 doubles it at scavenges until its
//   maximum (16 MB semi-spaces), for garbage that lives one request (a frame, a
//   signature), and keeps it resident: at 4 MB semi-spaces the loaded agent had
//   6 MB more. At 1 MB a scavenge comes every ~125 signatures at 64
//   connections and takes 0.4-0.8 ms (--trace-gc): 3-6 µs of GC per signature
//   against 2-3 at 4 MB, next to ~100 µs for the signature itself. V8 reads the
//   semi-space maximum only when the heap is set up, so the cap is the growth
//   factor: 1, read at each scavenge. With no growth to watch there is no GC
//   observer either (perf_hooks costs the idle agent memory).
// - Bytecode goes at the first full GC after its function last ran, not the
//   fifth: the memory reducer runs fewer than five when the agent goes idle, so
//   start-up's bytecode (options, configuration, binding the socket) stayed,
//   0.2 MB. A function needed again is compiled again from its source, which
//   V8 keeps.
//
// All these flags are read by V8 when it decides (not when the heap is set
// up), so v8.setFlagsFromString works after start.

import v8 = require('node:v8');

/** This many messages within BUSY_WINDOW_MS make the agent busy. */
export const BUSY_MESSAGES = 100;
export const BUSY_WINDOW_MS = 1000;

/** Before the agent's modules load (main.ts, for every agent mode). */
export function startQuietly(): void {
  v8.setFlagsFromString('--no-turbofan');
  v8.setFlagsFromString('--no-sparkplug');
  v8.setFlagsFromString('--semi-space-growth-factor=1');
  v8.setFlagsFromString('--bytecode-old-age=1');
}

let busy = false;
let windowStart = 0;
let inWindow = 0;

/** Every message the agent serves (serve.ts): the compilers come back with the first burst. */
export function messageArrived(now = Date.now()): void {
  if (busy) return;
  if (now - windowStart > BUSY_WINDOW_MS) {
    windowStart = now;
    inWindow = 0;
  }
  if (++inWindow < BUSY_MESSAGES) return;
  busy = true;
  v8.setFlagsFromString('--sparkplug');
  v8.setFlagsFromString('--turbofan');
}
