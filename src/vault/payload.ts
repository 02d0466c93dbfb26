// The sealed payload of a vault (its plaintext, see format.ts for the file
// around it): the identities with their per-key metadata, then the sections
// of agent state, then zero padding.

import { damaged, VaultError } from './error';
import { KeyMaterial } from './sshkey';
import { errorMessage } from '../ssh/error';
import { WireReader as Reader, WireWriter as Writer } from '../ssh/wire';

/** One stored identity: the key plus the defaults the agent applies when serving it. */
export interface VaultIdentity extends KeyMaterial {
  /** Unix time (seconds) when the key entered the vault. */
  created: number;
  /** Unix time (seconds) of the last signature, maintained by the agent. */
  lastUsed?: number;
  /** Ask for confirmation before each use (ssh-add -c). */
  confirm?: boolean;
  /** Seconds the agent keeps the key after unlocking (ssh-add -t). */
  lifetime?: number;
  /** Destination constraints (ssh-add -h syntax: `host`, `user@host`, `from>to`). */
  allow?: string[];
  /** Ask for confirmation only when used through a forwarded connection. */
  confirmForwarded?: boolean;
  /** Never listed nor used through a forwarded connection (only on this machine). */
  localOnly?: boolean;
  /** Seconds a "yes" to a confirmation covers further uses (--confirm-window); 0 = ask every time. */
  confirmWindow?: number;
  /** Security keys: the middleware that signs (ssh-add's SSH_SK_PROVIDER; "internal" is OpenSSH's). */
  skProvider?: string;
  /** Metadata keys written by a newer tsagent, preserved on rewrite. */
  extra?: Record<string, unknown>;
}

/**
 * Agent state kept beside the keys, as opaque bytes under a name (the agent's
 * learned host → key order, "host-order"). Sections a reader does not know
 * are written back unchanged.
 */
export interface VaultSection {
  name: string;
  data: Buffer;
}

export interface VaultContents {
  identities: VaultIdentity[];
  sections: VaultSection[];
}

/** The payload is padded to a multiple of this, so the file size does not tell how many keys a small vault has. */
export const PAD_BLOCK = 4096;
const MAX_SECTIONS = 64;
const SECTION_NAME = /^[a-z0-9][a-z0-9.@-]{0,63}$/;

function checkSections(sections: readonly VaultSection[]): void {
  if (sections.length > MAX_SECTIONS) throw new Error(`more than ${MAX_SECTIONS} sections`);
  const names = new Set<string>();
  for (const s of sections) {
    if (!SECTION_NAME.test(s.name)) throw new Error(`bad section name ${JSON.stringify(s.name)}`);
    if (names.has(s.name)) throw new Error(`section ${s.name} twice`);
    if (!Buffer.isBuffer(s.data)) throw new Error(`section ${s.name}: data must be a Buffer`);
    names.add(s.name);
  }
}

const KNOWN_META = new Set([
  'comment',
  'created',
  'lastUsed',
  'confirm',
  'lifetime',
  'allow',
  'confirmForwarded',
  'localOnly',
  'confirmWindow',
  'skProvider',
]);

/**
 * The sealed plaintext: the identities, then the sections (see format.ts),
 * zero-padded. A vault without sections is written as before them.
 */
export function encodePayload(
  identities: readonly VaultIdentity[],
  sections: readonly VaultSection[] = [],
): Buffer {
  const w = new Writer().uint32(identities.length);
  for (const id of identities) {
    checkIdentity(id);
    const meta: Record<string, unknown> = { ...(id.extra ?? {}) };
    meta.comment = id.comment;
    meta.created = id.created;
    if (id.lastUsed !== undefined) meta.lastUsed = id.lastUsed;
    if (id.confirm !== undefined) meta.confirm = id.confirm;
    if (id.lifetime !== undefined) meta.lifetime = id.lifetime;
    if (id.allow !== undefined) meta.allow = id.allow;
    if (id.confirmForwarded !== undefined) meta.confirmForwarded = id.confirmForwarded;
    if (id.localOnly !== undefined) meta.localOnly = id.localOnly;
    if (id.confirmWindow !== undefined) meta.confirmWindow = id.confirmWindow;
    if (id.skProvider !== undefined) meta.skProvider = id.skProvider;
    w.string(id.keyType)
      .string(id.publicBlob)
      .string(id.privateFields)
      .string(JSON.stringify(meta));
  }
  checkSections(sections);
  if (sections.length) {
    w.uint32(sections.length);
    for (const s of sections) w.string(s.name).string(s.data);
  }
  const data = w.toBuffer();
  const padded = Buffer.alloc(Math.ceil((data.length + 1) / PAD_BLOCK) * PAD_BLOCK);
  data.copy(padded);
  data.fill(0);
  return padded;
}

/** Refuse identities that would not read back (a bug in the caller, not damage). */
function checkIdentity(id: VaultIdentity): void {
  const bad = (what: string) =>
    new VaultError('INVALID', `invalid identity ${JSON.stringify(id.comment)}: ${what}`);
  if (typeof id.keyType !== 'string' || !id.keyType) throw bad('no key type');
  if (!Buffer.isBuffer(id.publicBlob) || !Buffer.isBuffer(id.privateFields))
    throw bad('key fields must be Buffers');
  if (typeof id.comment !== 'string') throw bad('comment must be a string');
  if (!Number.isFinite(id.created)) throw bad('created must be a number');
  if (id.lastUsed !== undefined && !Number.isFinite(id.lastUsed))
    throw bad('lastUsed must be a number');
  if (id.confirm !== undefined && typeof id.confirm !== 'boolean')
    throw bad('confirm must be a boolean');
  if (id.localOnly !== undefined && typeof id.localOnly !== 'boolean')
    throw bad('localOnly must be a boolean');
  if (
    id.confirmWindow !== undefined &&
    !(Number.isInteger(id.confirmWindow) && id.confirmWindow >= 0)
  )
    throw bad('confirmWindow must be a number of seconds');
  if (id.lifetime !== undefined && !(Number.isInteger(id.lifetime) && id.lifetime > 0))
    throw bad('lifetime must be a positive number of seconds');
  if (
    id.allow !== undefined &&
    !(Array.isArray(id.allow) && id.allow.every((a) => typeof a === 'string'))
  )
    throw bad('allow must be a list of strings');
  if (id.skProvider !== undefined && (typeof id.skProvider !== 'string' || !id.skProvider))
    throw bad('skProvider must be a non-empty string');
}

/** The identities alone (what most readers want). */
export function decodePayload(plain: Buffer): VaultIdentity[] {
  return decodeContents(plain).identities;
}

export function decodeContents(plain: Buffer): VaultContents {
  try {
    const r = new Reader(plain);
    const count = r.uint32();
    const out: VaultIdentity[] = [];
    for (let i = 0; i < count; i++) {
      const keyType = r.text();
      const publicBlob = Buffer.from(r.string());
      const privateFields = Buffer.from(r.string());
      const meta = JSON.parse(r.text()) as Record<string, unknown>;
      if (typeof meta !== 'object' || meta === null || Array.isArray(meta))
        throw new Error('metadata is not an object');
      if (new Reader(publicBlob).text() !== keyType) throw new Error('public key type mismatch');
      const extra = Object.fromEntries(Object.entries(meta).filter(([k]) => !KNOWN_META.has(k)));
      const id: VaultIdentity = {
        keyType,
        publicBlob,
        privateFields,
        comment: meta.comment as string,
        created: meta.created as number,
      };
      if (meta.lastUsed !== undefined) id.lastUsed = meta.lastUsed as number;
      if (meta.confirm !== undefined) id.confirm = meta.confirm as boolean;
      if (meta.lifetime !== undefined) id.lifetime = meta.lifetime as number;
      if (meta.allow !== undefined) id.allow = meta.allow as string[];
      if (meta.confirmForwarded !== undefined)
        id.confirmForwarded = meta.confirmForwarded as boolean;
      if (meta.localOnly !== undefined) id.localOnly = meta.localOnly as boolean;
      if (meta.confirmWindow !== undefined) id.confirmWindow = meta.confirmWindow as number;
      if (meta.skProvider !== undefined) id.skProvider = meta.skProvider as string;
      if (Object.keys(extra).length) id.extra = extra;
      checkIdentity(id);
      out.push(id);
    }
    // Zero padding reads as a section count of 0: a vault from before sections.
    const sections: VaultSection[] = [];
    const nSections = r.remaining >= 4 ? r.uint32() : 0;
    if (nSections > MAX_SECTIONS) throw new Error(`${nSections} sections`);
    for (let i = 0; i < nSections; i++)
      sections.push({ name: r.text(), data: Buffer.from(r.string()) });
    checkSections(sections);
    if (r.rest().some((b) => b !== 0)) throw new Error('garbage after the sections');
    return { identities: out, sections };
  } catch (err) {
    // Only reachable with the right key, i.e. a bug or a forger who knows the passphrase.
    throw damaged(`payload does not decode: ${errorMessage(err)}`);
  }
}
