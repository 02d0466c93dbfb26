// Keys kept to this machine (`tsagent add --local-only`, `tsagent vault set KEY
// --local-only`): on a forwarded connection such a key is neither listed nor
// used, as if it were not there; everywhere else it is an ordinary key. The
// other visibility rules (destination constraints) are destination.ts's.

import type { DestinationConstraint } from './constraints';
import {
  BindState,
  Permission,
  checkSignDestination,
  identityPermitted,
  isForwarded,
} from './destination';
import type { SignedData } from './signed-data';

/** What the rules look at in a keyring entry. */
export interface Visibility {
  destinations: readonly DestinationConstraint[];
  localOnly?: boolean;
}

export const LOCAL_ONLY_REFUSAL = 'local-only key, not used through a forwarded connection';

/** May this connection see (list, replace, remove) the identity? */
export function identityVisible(e: Visibility, state: BindState): boolean {
  if (e.localOnly && isForwarded(state)) return false;
  return identityPermitted(e.destinations, state, null).ok;
}

/** May the identity sign this (decoded) data on this connection (checkSignDestination, and local-only)? */
export function signPermitted(e: Visibility, state: BindState, signed: SignedData): Permission {
  if (e.localOnly && isForwarded(state)) return { ok: false, reason: LOCAL_ONLY_REFUSAL };
  return checkSignDestination(e.destinations, state, signed);
}
