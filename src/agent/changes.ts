// Which requests change the agent (its keys, its lock, tsagent's own controls),
// by their message names: these are refused from a forwarded connection unless
// the owner allows it, since anyone with root on a host forwarded to can send
// them (ssh-add -D, -x, adding keys), and OpenSSH's agent serves them all.

import { MSG, Request } from './protocol';

const NAMES = new Map<number, string>(Object.entries(MSG).map(([name, code]) => [code, name]));

/** The message name of a code (`LOCK`), or its number. */
export function messageName(code: number): string {
  return NAMES.get(code) ?? String(code);
}

/**
 * The name of the change a request asks for, or null if it changes nothing
 * (list, sign, query, session-bind, unknown types). A malformed LOCK/UNLOCK
 * counts: answering it locks the agent.
 */
export function changeRequested(req: Request, ownExtensions: readonly string[]): string | null {
  switch (req.type) {
    case 'add': {
      const c = req.constraints;
      const constrained =
        c.lifetime !== undefined || c.confirm || c.maxSign !== undefined || c.extensions.length > 0;
      return constrained ? 'ADD_ID_CONSTRAINED' : 'ADD_IDENTITY';
    }
    case 'remove':
      return 'REMOVE_IDENTITY';
    case 'remove-all':
      return 'REMOVE_ALL_IDENTITIES';
    case 'lock':
      return 'LOCK';
    case 'unlock':
      return 'UNLOCK';
    case 'smartcard':
      return messageName(req.code);
    case 'extension':
      return ownExtensions.includes(req.name) ? `EXTENSION ${req.name}` : null;
    case 'malformed':
      return req.code === MSG.LOCK || req.code === MSG.UNLOCK ? messageName(req.code) : null;
    default:
      return null;
  }
}
