// The codec of key constraints in SSH_AGENTC_ADD_ID_CONSTRAINED (PROTOCOL.agent
// §"Key constraints"), including restrict-destination-v00@openssh.com, as
// ssh-agent.c's parse_key_constraints / parse_dest_constraint read them. The
// policy that applies destination constraints is destination.ts.

import { quoted } from '../ssh/escape';
import { SK_PROVIDER_EXTENSION, readSkProviderExtension } from '../ssh/sk-key';
import { WireError, WireReader, WireWriter } from '../ssh/wire';

export const CONSTRAIN = { LIFETIME: 1, CONFIRM: 2, MAXSIGN: 3, EXTENSION: 255 } as const;

export const RESTRICT_DESTINATION = 'restrict-destination-v00@openssh.com';
/** PROTOCOL.agent (OpenSSH 9.6): certificates to graft onto the keys of a PKCS#11 token. */
export const ASSOCIATED_CERTS = 'associated-certs-v00@openssh.com';

/**
 * tsagent's own: the key is neither listed nor used on a forwarded connection
 * (`tsagent add --local-only`). No data follows the name. OpenSSH's agent
 * refuses the add (unknown constraint), so the key never lands there unmarked.
 */
export const LOCAL_ONLY = 'local-only@tsagent';

/**
 * A key constraint extension we understand; anything else makes the add fail.
 * `data` is the extension's string (restrict-destination: the constraints;
 * sk-provider: the provider path); local-only has none.
 */
export type ConstraintExtension =
  | { name: typeof RESTRICT_DESTINATION | typeof SK_PROVIDER_EXTENSION; data: Buffer }
  | { name: typeof LOCAL_ONLY; data?: undefined };

/** The certificates of associated-certs-v00@openssh.com. */
export interface AssociatedCerts {
  /** Load only the certificates, not the plain token keys. */
  certsOnly: boolean;
  certs: Buffer[];
}

/** Which request the constraints came with: each extension is valid with one (ssh-agent.c). */
export type ConstraintsOf = 'identity' | 'smartcard';

export interface KeySpec {
  key: Buffer;
  isCA: boolean;
}

export interface Hop {
  user: string | null;
  hostname: string | null;
  keys: KeySpec[];
}

export interface DestinationConstraint {
  from: Hop;
  to: Hop;
}

export interface Constraints {
  lifetime?: number; // seconds
  confirm?: boolean;
  maxSign?: number;
  extensions: ConstraintExtension[];
  /** Parsed from restrict-destination-v00@openssh.com by the decoder. */
  destinations?: DestinationConstraint[];
  /** sk-provider@openssh.com: the middleware of a security key (ADD_ID_CONSTRAINED only). */
  skProvider?: string;
  /** associated-certs-v00@openssh.com (ADD_SMARTCARD_KEY_CONSTRAINED only). */
  associatedCerts?: AssociatedCerts;
  /** From local-only@tsagent: never listed nor used on a forwarded connection. */
  localOnly?: boolean;
}

/** ssh-agent.c AGENT_MAX_EXT_CERTS. */
const MAX_ASSOCIATED_CERTS = 1024;

function readAssociatedCerts(r: WireReader): AssociatedCerts {
  const certsOnly = r.bool();
  const blob = new WireReader(r.string());
  const certs: Buffer[] = [];
  while (blob.remaining > 0) {
    if (certs.length >= MAX_ASSOCIATED_CERTS)
      throw new WireError('too many associated certificates');
    certs.push(Buffer.from(blob.string()));
  }
  return { certsOnly, certs };
}

/** OpenSSH's AGENT_MAX_DEST_CONSTRAINTS. */
const MAX_CONSTRAINTS = 1024;

/**
 * Longest user and host names a hop may name, in bytes: a user name longer than
 * Linux's LOGIN_NAME_MAX (256 with its NUL) or a host name longer than NI_MAXHOST
 * (1025 with its NUL) names nothing that can log in, and only makes patterns slower.
 */
export const MAX_USER_LENGTH = 255;
export const MAX_HOST_LENGTH = 1024;

function readHop(b: Buffer): Hop {
  const r = new WireReader(b);
  const user = r.text();
  const hostname = r.text();
  if (Buffer.byteLength(user) > MAX_USER_LENGTH)
    throw new WireError(`user name over ${MAX_USER_LENGTH} bytes`);
  if (Buffer.byteLength(hostname) > MAX_HOST_LENGTH)
    throw new WireError(`host name over ${MAX_HOST_LENGTH} bytes`);
  if (r.string().length !== 0) throw new WireError('unsupported hop extensions');
  const keys: KeySpec[] = [];
  while (r.remaining > 0) keys.push({ key: Buffer.from(r.string()), isCA: r.byte() !== 0 });
  return { user: user || null, hostname: hostname || null, keys };
}

/** Parse the data of a restrict-destination-v00@openssh.com constraint (after its name). */
export function parseDestinationConstraints(data: Buffer): DestinationConstraint[] {
  const outer = new WireReader(data);
  const out: DestinationConstraint[] = [];
  while (outer.remaining > 0) {
    if (out.length >= MAX_CONSTRAINTS) throw new WireError('too many destination constraints');
    const r = new WireReader(outer.string());
    const from = readHop(r.string());
    const to = readHop(r.string());
    if (r.string().length !== 0) throw new WireError('unsupported constraint extensions');
    r.end();
    if ((from.hostname === null) !== (from.keys.length === 0) || from.user !== null)
      throw new WireError('inconsistent "from" specification');
    if (to.hostname === null || to.keys.length === 0)
      throw new WireError('incomplete "to" specification');
    out.push({ from, to });
  }
  return out;
}

/**
 * Read the constraints that follow the comment of ADD_ID_CONSTRAINED (or the
 * PIN of ADD_SMARTCARD_KEY_CONSTRAINED: `of` = 'smartcard'). Throws WireError.
 */
export function decodeConstraints(r: WireReader, of: ConstraintsOf = 'identity'): Constraints {
  const c: Constraints = { extensions: [] };
  while (r.remaining > 0) {
    const code = r.byte();
    switch (code) {
      case CONSTRAIN.LIFETIME:
        if (c.lifetime !== undefined) throw new WireError('lifetime constraint repeated');
        c.lifetime = r.uint32();
        break;
      case CONSTRAIN.CONFIRM:
        if (c.confirm) throw new WireError('confirm constraint repeated');
        c.confirm = true;
        break;
      case CONSTRAIN.MAXSIGN:
        if (c.maxSign !== undefined) throw new WireError('maxsign constraint repeated');
        c.maxSign = r.uint32();
        break;
      case CONSTRAIN.EXTENSION: {
        const name = r.text();
        if (
          c.extensions.some((e) => e.name === name) ||
          (name === ASSOCIATED_CERTS && c.associatedCerts)
        )
          throw new WireError(`constraint ${name} repeated`);
        // ssh-agent.c parse_key_constraint_extension: sk-provider only for keys,
        // associated certificates only for tokens.
        if (name === SK_PROVIDER_EXTENSION && of === 'identity') {
          c.skProvider = readSkProviderExtension(r);
          c.extensions.push({ name, data: Buffer.from(c.skProvider, 'utf8') });
        } else if (name === ASSOCIATED_CERTS && of === 'smartcard') {
          c.associatedCerts = readAssociatedCerts(r);
        } else if (name === RESTRICT_DESTINATION) {
          const data = r.string();
          c.destinations = parseDestinationConstraints(data);
          c.extensions.push({ name, data });
        } else if (name === LOCAL_ONLY) {
          c.localOnly = true;
          c.extensions.push({ name });
        } else {
          throw new WireError(`unsupported constraint extension ${quoted(name)}`);
        }
        break;
      }
      default:
        throw new WireError(`unknown constraint ${code}`);
    }
  }
  return c;
}

/** Is there anything to encode (ADD_ID_CONSTRAINED rather than ADD_IDENTITY)? */
export function hasConstraints(c: Constraints): boolean {
  return (
    c.lifetime !== undefined ||
    !!c.confirm ||
    c.maxSign !== undefined ||
    c.extensions.length > 0 ||
    !!c.associatedCerts ||
    !!c.localOnly
  );
}

/** Write constraints as ADD_ID_CONSTRAINED carries them (the client side). */
export function encodeConstraints(w: WireWriter, c: Constraints): WireWriter {
  if (c.lifetime !== undefined) w.byte(CONSTRAIN.LIFETIME).uint32(c.lifetime);
  if (c.confirm) w.byte(CONSTRAIN.CONFIRM);
  if (c.maxSign !== undefined) w.byte(CONSTRAIN.MAXSIGN).uint32(c.maxSign);
  for (const e of c.extensions) {
    w.byte(CONSTRAIN.EXTENSION).string(e.name);
    if (e.data) w.string(e.data);
  }
  if (c.localOnly && !c.extensions.some((e) => e.name === LOCAL_ONLY))
    w.byte(CONSTRAIN.EXTENSION).string(LOCAL_ONLY);
  if (c.associatedCerts) {
    const certs = new WireWriter();
    for (const cert of c.associatedCerts.certs) certs.string(cert);
    w.byte(CONSTRAIN.EXTENSION)
      .string(ASSOCIATED_CERTS)
      .bool(c.associatedCerts.certsOnly)
      .string(certs.toBuffer());
  }
  return w;
}
