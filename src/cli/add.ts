// `tsagent add [--save] [-c] [-t life] [--local-only] FILE…`: like ssh-add FILE,
// and with --save the key is also stored in the vault (so it comes back after a
// reboot). --local-only: never listed nor used through a forwarded agent (the
// local-only@tsagent constraint, which OpenSSH's agent refuses as unknown).

import fs = require('node:fs');
import { AgentClient } from '../agent/client';
import { fingerprint } from '../ssh/fingerprint';
import type { Constraints } from '../agent/protocol';
import type { ImportedKey } from '../vault/keyfile';
import { agentSocket } from '../daemon/paths';
import { errorMessage } from '../ssh/error';
import { escapeText } from '../ssh/escape';
import { UsageError } from './errors';
import { parseLifetime } from './options';
import { PassphraseReader } from './passphrase';

const USAGE =
  'usage: tsagent add [--save] [-c] [-t life] [--local-only] [--vault path] [--passphrase-fd n] file ...';

interface AddOptions {
  save: boolean;
  confirm: boolean;
  localOnly: boolean;
  lifetime?: number;
  vault?: string;
  fd?: number;
  files: string[];
}

function parseArgs(argv: string[]): AddOptions {
  const o: AddOptions = { save: false, confirm: false, localOnly: false, files: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new UsageError(`option ${a} requires an argument`);
      return argv[++i];
    };
    if (a === '--save') o.save = true;
    else if (a === '-c') o.confirm = true;
    else if (a === '--local-only') o.localOnly = true;
    else if (a === '-t') {
      const t = parseLifetime(value());
      if (t === null) throw new UsageError('Invalid lifetime');
      o.lifetime = t;
    } else if (a === '--vault') o.vault = value();
    else if (a === '--passphrase-fd') {
      const v = value();
      if (!/^\d+$/.test(v))
        throw new UsageError(`--passphrase-fd needs a file descriptor number, not "${v}"`);
      o.fd = Number(v);
    } else if (a.startsWith('-') && a !== '-') throw new UsageError(`unknown option ${a}`);
    else o.files.push(a);
  }
  if (o.files.length === 0) throw new UsageError('no key file given');
  return o;
}

export async function runAdd(argv: string[]): Promise<number> {
  if (argv.some((a) => a === '-h' || a === '--help')) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  let o: AddOptions;
  try {
    o = parseArgs(argv);
  } catch (e) {
    process.stderr.write(`tsagent add: ${errorMessage(e)}\n${USAGE}\n`);
    return 2;
  }
  const { parseKeyFile, KeyFileError } =
    require('../vault/keyfile') as typeof import('../vault/keyfile');
  const pass = new PassphraseReader({ fd: o.fd });
  const keys: ImportedKey[] = [];
  for (const file of o.files) {
    let data: Buffer;
    try {
      data = fs.readFileSync(file);
    } catch (e) {
      process.stderr.write(`tsagent add: cannot read ${file}: ${errorMessage(e)}\n`);
      return 1;
    }
    try {
      keys.push(parseKeyFile(data, { defaultComment: file }));
    } catch (e) {
      if (!(e instanceof KeyFileError) || e.code !== 'NEEDS_PASSPHRASE') {
        process.stderr.write(`tsagent add: ${file}: ${errorMessage(e)}\n`);
        return 1;
      }
      const p = await pass.ask(`Enter passphrase for ${file}: `);
      try {
        keys.push(parseKeyFile(data, { defaultComment: file, passphrase: p }));
      } catch (e2) {
        process.stderr.write(`tsagent add: ${file}: ${errorMessage(e2)}\n`);
        return 1;
      } finally {
        p.fill(0);
      }
    }
  }
  let client: AgentClient;
  try {
    client = await AgentClient.connect(agentSocket());
  } catch {
    process.stderr.write(
      `tsagent add: no agent at ${agentSocket()}: start it with eval "$(tsagent)"\n`,
    );
    return 2;
  }
  const constraints: Constraints = {
    extensions: [],
    confirm: o.confirm || undefined,
    lifetime: o.lifetime,
    localOnly: o.localOnly || undefined,
  };
  try {
    for (const k of keys) {
      const r = await client.request({
        type: 'add',
        keyType: k.keyType,
        fields: k.privateFields,
        comment: k.comment,
        constraints,
      });
      if (r.type !== 'success') {
        const why = o.localOnly ? 'locked, or an agent without --local-only?' : 'locked?';
        process.stderr.write(`tsagent add: the agent refused ${escapeText(k.comment)} (${why})\n`);
        return 1;
      }
      process.stderr.write(
        `Identity added: ${escapeText(k.comment)} (${fingerprint(k.publicBlob)})\n`,
      );
    }
  } finally {
    client.close();
  }
  if (o.save) {
    const { VaultFile } = require('../vault/store') as typeof import('../vault/store');
    const { resolveVaultPath } = require('../vault/paths') as typeof import('../vault/paths');
    const file = new VaultFile(resolveVaultPath(o.vault));
    file.checkIntegrity();
    const p = await pass.ask('Enter passphrase for the vault: ');
    const vault = await file.unlock(p).finally(() => p.fill(0));
    try {
      const { added, skipped } = vault.add(keys, {
        confirm: o.confirm || undefined,
        lifetime: o.lifetime,
        localOnly: o.localOnly || undefined,
      });
      for (const id of added)
        process.stderr.write(
          `Saved in the vault: ${escapeText(id.comment)} (${fingerprint(id.publicBlob)})\n`,
        );
      for (const s of skipped)
        process.stderr.write(`Already in the vault: ${escapeText(s.existing.comment)}\n`);
    } finally {
      vault.lock();
    }
  }
  for (const k of keys) k.privateFields.fill(0);
  return 0;
}
