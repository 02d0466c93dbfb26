// The agent protocol as typed values (draft-miller-ssh-agent, OpenSSH PROTOCOL.agent).
// decodeRequest never throws: an unknown or malformed message is itself a value,
// so the server can answer it with FAILURE instead of tearing the connection down.

import { Constraints, decodeConstraints, encodeConstraints, hasConstraints } from './constraints';
import { PrivateKey, readPrivateKey } from '../ssh/privatekey';
import { WireError, WireReader, WireWriter } from '../ssh/wire';

export { CONSTRAIN, type Constraints } from './constraints';

export const MSG = {
  FAILURE: 5,
  SUCCESS: 6,
  REQUEST_IDENTITIES: 11,
  IDENTITIES_ANSWER: 12,
  SIGN_REQUEST: 13,
  SIGN_RESPONSE: 14,
  ADD_IDENTITY: 17,
  REMOVE_IDENTITY: 18,
  REMOVE_ALL_IDENTITIES: 19,
  ADD_SMARTCARD_KEY: 20,
  REMOVE_SMARTCARD_KEY: 21,
  LOCK: 22,
  UNLOCK: 23,
  ADD_ID_CONSTRAINED: 25,
  ADD_SMARTCARD_KEY_CONSTRAINED: 26,
  EXTENSION: 27,
  EXTENSION_FAILURE: 28,
  EXTENSION_RESPONSE: 29,
} as const;

export const SIGN_FLAG = { RSA_SHA2_256: 2, RSA_SHA2_512: 4 } as const;

/** OpenSSH's limit on one message (AGENT_MAX_LEN). */
export const MAX_MESSAGE = 256 * 1024;

/**
 * Longest key comment accepted (bytes). Two comments near MAX_MESSAGE would push
 * the identities answer past what ssh-add -l reads (issue 11 point 5).
 */
export const MAX_COMMENT = 4096;

export type Request =
  | { type: 'request-identities' }
  | { type: 'sign'; keyBlob: Buffer; data: Buffer; flags: number }
  | { type: 'add'; key: PrivateKey; comment: Buffer; constraints: Constraints }
  | { type: 'remove'; keyBlob: Buffer }
  | { type: 'remove-all' }
  | { type: 'lock'; passphrase: Buffer }
  | { type: 'unlock'; passphrase: Buffer }
  | { type: 'smartcard'; code: number }
  | { type: 'extension'; name: string; contents: Buffer }
  | { type: 'unknown'; code: number }
  | { type: 'malformed'; code: number; reason: string };

/** Comments are bytes: OpenSSH does not require UTF-8, and we hand back exactly what was added. */
export interface Identity {
  keyBlob: Buffer;
  comment: Buffer;
}

export type Response =
  | { type: 'success' }
  | { type: 'failure' }
  | { type: 'extension-failure' }
  | { type: 'identities'; identities: Identity[] }
  | { type: 'signature'; signature: Buffer }
  | { type: 'extension-response'; name: string; contents: Buffer };

function decodeBody(code: number, r: WireReader): Request {
  switch (code) {
    case MSG.REQUEST_IDENTITIES:
      r.end();
      return { type: 'request-identities' };
    case MSG.SIGN_REQUEST: {
      const keyBlob = r.string();
      const data = r.string();
      const flags = r.uint32();
      r.end();
      return { type: 'sign', keyBlob, data, flags };
    }
    case MSG.ADD_IDENTITY:
    case MSG.ADD_ID_CONSTRAINED: {
      const key = readPrivateKey(r, r.text());
      const comment = Buffer.from(r.string());
      if (comment.length > MAX_COMMENT)
        throw new WireError(`comment of ${comment.length} bytes (over ${MAX_COMMENT})`);
      const constraints =
        code === MSG.ADD_ID_CONSTRAINED ? decodeConstraints(r) : { extensions: [] };
      r.end();
      return { type: 'add', key, comment, constraints };
    }
    case MSG.REMOVE_IDENTITY: {
      const keyBlob = r.string();
      r.end();
      return { type: 'remove', keyBlob };
    }
    case MSG.REMOVE_ALL_IDENTITIES:
      r.end();
      return { type: 'remove-all' };
    case MSG.LOCK:
    case MSG.UNLOCK: {
      const passphrase = r.string();
      r.end();
      return { type: code === MSG.LOCK ? 'lock' : 'unlock', passphrase };
    }
    case MSG.ADD_SMARTCARD_KEY:
    case MSG.REMOVE_SMARTCARD_KEY:
    case MSG.ADD_SMARTCARD_KEY_CONSTRAINED:
      return { type: 'smartcard', code };
    case MSG.EXTENSION: {
      const name = r.text();
      return { type: 'extension', name, contents: r.rest() };
    }
    default:
      return { type: 'unknown', code };
  }
}

/** Decode one message body (without its length prefix). Never throws. */
export function decodeRequest(msg: Buffer): Request {
  if (msg.length === 0) return { type: 'malformed', code: -1, reason: 'empty message' };
  const code = msg[0];
  try {
    return decodeBody(code, new WireReader(msg.subarray(1)));
  } catch (e) {
    if (e instanceof WireError) return { type: 'malformed', code, reason: e.message };
    throw e;
  }
}

/** Encode a response body with its uint32 length prefix, ready to write to the socket. */
export function encodeResponse(res: Response): Buffer {
  const w = new WireWriter().uint32(0);
  switch (res.type) {
    case 'success':
      w.byte(MSG.SUCCESS);
      break;
    case 'failure':
      w.byte(MSG.FAILURE);
      break;
    case 'extension-failure':
      w.byte(MSG.EXTENSION_FAILURE);
      break;
    case 'identities':
      w.byte(MSG.IDENTITIES_ANSWER).uint32(res.identities.length);
      for (const id of res.identities) w.string(id.keyBlob).string(id.comment);
      break;
    case 'signature':
      w.byte(MSG.SIGN_RESPONSE).string(res.signature);
      break;
    case 'extension-response':
      w.byte(MSG.EXTENSION_RESPONSE).string(res.name).raw(res.contents);
      break;
  }
  const out = w.toBuffer();
  out.writeUInt32BE(out.length - 4, 0);
  return out;
}

// Client side (tests, benchmark, `tsagent unlock`): the mirror image of the above.
// An outgoing add carries the raw private-key fields rather than a parsed key.

export type AddRequestFields = {
  type: 'add';
  keyType: string;
  fields: Buffer;
  comment: Buffer | string;
  constraints: Constraints;
};
export type OutgoingRequest = Exclude<Request, { type: 'add' }> | AddRequestFields;

export function encodeRequest(req: OutgoingRequest): Buffer {
  const w = new WireWriter().uint32(0);
  switch (req.type) {
    case 'request-identities':
      w.byte(MSG.REQUEST_IDENTITIES);
      break;
    case 'sign':
      w.byte(MSG.SIGN_REQUEST).string(req.keyBlob).string(req.data).uint32(req.flags);
      break;
    case 'add': {
      const constrained = hasConstraints(req.constraints);
      w.byte(constrained ? MSG.ADD_ID_CONSTRAINED : MSG.ADD_IDENTITY)
        .string(req.keyType)
        .raw(req.fields)
        .string(req.comment);
      encodeConstraints(w, req.constraints);
      break;
    }
    case 'remove':
      w.byte(MSG.REMOVE_IDENTITY).string(req.keyBlob);
      break;
    case 'remove-all':
      w.byte(MSG.REMOVE_ALL_IDENTITIES);
      break;
    case 'lock':
    case 'unlock':
      w.byte(req.type === 'lock' ? MSG.LOCK : MSG.UNLOCK).string(req.passphrase);
      break;
    case 'extension':
      w.byte(MSG.EXTENSION).string(req.name).raw(req.contents);
      break;
    case 'smartcard':
    case 'unknown':
    case 'malformed':
      w.byte(req.code);
      break;
  }
  const out = w.toBuffer();
  out.writeUInt32BE(out.length - 4, 0);
  return out;
}

/** Decode a response body (without length). Throws WireError on malformed input. */
export function decodeResponse(msg: Buffer): Response {
  const r = new WireReader(msg);
  const code = r.byte();
  switch (code) {
    case MSG.SUCCESS:
      r.end();
      return { type: 'success' };
    case MSG.FAILURE:
      r.end();
      return { type: 'failure' };
    case MSG.EXTENSION_FAILURE:
      r.end();
      return { type: 'extension-failure' };
    case MSG.IDENTITIES_ANSWER: {
      const n = r.uint32();
      const identities: Identity[] = [];
      for (let i = 0; i < n; i++) identities.push({ keyBlob: r.string(), comment: r.string() });
      r.end();
      return { type: 'identities', identities };
    }
    case MSG.SIGN_RESPONSE: {
      const signature = r.string();
      r.end();
      return { type: 'signature', signature };
    }
    case MSG.EXTENSION_RESPONSE:
      return { type: 'extension-response', name: r.text(), contents: r.rest() };
    default:
      throw new WireError(`unexpected response type ${code}`);
  }
}
