// A decrypted vault: its identities, the key that opened it, and every change
// to them, each written to the file at once.
import {
  newVaultKey,
  sealVault,
  VaultContents,
  VaultError,
  VaultIdentity,
  VaultSection,
} from './format';
import { KdfParams, VaultKey, wipeVaultKey } from './kdf';
import { fingerprint } from '../ssh/fingerprint';
import { isSkKeyType } from '../ssh/sk-key';
import { KeyMaterial } from './sshkey';

/**
 * What `<vault>.bak` holds after a write: the version replaced (a damaged
 * write can be undone), or the new one, when the old must not survive: after
 * a passphrase change (it would still open with the old passphrase) and after
 * a key is removed (it would still hold the key).
 */
export type BackupContent = 'previous' | 'new';

/** What an unlocked vault needs of its file (VaultFile, in store.ts). */
export interface SealedVaultFile {
  readonly path: string;
  /** The sealed bytes now on disk, after the permission checks. */
  readBytes(): Buffer;
  /** Replace the file with `bytes` if it still holds `expected` (see VaultFile.write). */
  write(bytes: Buffer, expected: Buffer | null, backup?: BackupContent): void;
  /** Decrypt sealed bytes of this file with an already derived key. */
  decrypt(bytes: Buffer, key: VaultKey): VaultContents;
}

/** Resolve a NAME: exact fingerprint, exact comment, or a unique fingerprint prefix. */
export function findIdentity(
  identities: readonly VaultIdentity[],
  name: string,
  where = 'the vault',
): VaultIdentity {
  const fps = identities.map((id) => fingerprint(id.publicBlob));
  const ambiguous = (hits: number[]) =>
    new VaultError(
      'INVALID',
      `"${name}" matches ${hits.length} keys in ${where} (${hits.map((i) => fps[i]).join(', ')}): name one by its fingerprint`,
    );
  const byFp = fps.findIndex((fp) => fp === name);
  if (byFp >= 0) return identities[byFp];
  const byComment = identities.flatMap((id, i) => (id.comment === name ? [i] : []));
  if (byComment.length === 1) return identities[byComment[0]];
  if (byComment.length > 1) throw ambiguous(byComment);
  const bare = name.startsWith('SHA256:') ? name.slice(7) : name;
  if (bare.length >= 4) {
    const byPrefix = fps.flatMap((fp, i) => (fp.slice(7).startsWith(bare) ? [i] : []));
    if (byPrefix.length === 1) return identities[byPrefix[0]];
    if (byPrefix.length > 1) throw ambiguous(byPrefix);
  }
  throw new VaultError(
    'NOT_FOUND',
    `no key named "${name}" in ${where}: give its comment or fingerprint as "tsagent vault list" shows them`,
  );
}

export interface IdentityDefaults {
  confirm?: boolean;
  confirmForwarded?: boolean;
  /** Never listed nor used through a forwarded connection. */
  localOnly?: boolean;
  /** Destination constraints to add; null clears them all. */
  allow?: string[] | null;
  /** Clear the constraints first, then add `allow` (replace the list). */
  clearAllow?: boolean;
  /** Seconds; null clears it. */
  lifetime?: number | null;
  /** Seconds a "yes" covers (0 = ask every time); null: the agent's window again. */
  confirmWindow?: number | null;
  /** For security keys being added: their middleware (`--sk-provider`). */
  skProvider?: string;
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

function checkComment(comment: string): void {
  if (!comment.trim() || /[\r\n]/.test(comment))
    throw new VaultError(
      'INVALID',
      `invalid key name ${JSON.stringify(comment)}: use a non-empty single line`,
    );
}

/**
 * A decrypted vault and the key that opened it. Every mutation writes the
 * vault at once (atomically) and only then updates this object, so a failed
 * write leaves both the file and this object as they were.
 */
export class UnlockedVault {
  constructor(
    readonly file: SealedVaultFile,
    private current: VaultIdentity[],
    private vaultKey: VaultKey,
    private sealedBytes: Buffer,
    /** Agent state beside the keys (format.ts "sections"), kept across every write. */
    private sections: VaultSection[] = [],
  ) {}

  get identities(): readonly VaultIdentity[] {
    return this.current;
  }

  /** Does the file still hold exactly what this object last read or wrote? */
  isCurrent(): boolean {
    try {
      return this.file.readBytes().equals(this.sealedBytes);
    } catch {
      return false;
    }
  }

  get key(): VaultKey {
    return this.vaultKey;
  }

  get kdf(): KdfParams {
    return { ...this.vaultKey.kdf };
  }

  find(name: string): VaultIdentity {
    return findIdentity(this.current, name, `vault ${this.file.path}`);
  }

  /** How often reload() read the file anew (the agent serves what a reload brought). */
  reloads = 0;

  /**
   * Run a change; when another process (the agent recording what it learned,
   * or another command) wrote the vault between our read and our write, read
   * it again with the same key and make the change once more on what it holds
   * now, so neither write undoes the other. A file the key no longer opens
   * (the passphrase changed) is reported as the change it is.
   */
  private retrying<T>(change: () => T): T {
    for (let attempt = 0; ; attempt++) {
      try {
        return change();
      } catch (err) {
        if (!(err instanceof VaultError && err.code === 'CHANGED') || attempt >= 4) throw err;
        try {
          this.reload();
        } catch {
          throw err;
        }
      }
    }
  }

  /** Seal `next` with the current key and replace the file. */
  commit(next: VaultIdentity[], backup: BackupContent = 'previous'): void {
    this.seal(next, this.sections, backup);
  }

  private seal(next: VaultIdentity[], sections: VaultSection[], backup: BackupContent): void {
    const bytes = sealVault(next, this.vaultKey, sections);
    this.file.write(bytes, this.sealedBytes, backup);
    this.sealedBytes = bytes;
    this.current = next;
    this.sections = sections;
  }

  /** The data of a section, or undefined when the vault has none by that name. */
  section(name: string): Buffer | undefined {
    return this.sections.find((s) => s.name === name)?.data;
  }

  /** Replace (or with null remove) a section, and write the vault. */
  setSection(name: string, data: Buffer | null): void {
    this.retrying(() => {
      const rest = this.sections.filter((s) => s.name !== name);
      const next = data === null ? rest : [...rest, { name, data: Buffer.from(data) }];
      this.seal(this.current, next, 'previous');
    });
  }

  /** Pick up changes another process wrote (same passphrase), without asking for it again. */
  reload(): void {
    const bytes = this.file.readBytes();
    const fresh = this.file.decrypt(bytes, this.vaultKey);
    // The old copies are dropped: overwrite their secrets, as lock() does.
    wipeIdentities(this.current);
    this.current = fresh.identities;
    this.sections = fresh.sections;
    this.sealedBytes = bytes;
    this.reloads++;
  }

  /** Add keys; those already present (same public key) are skipped and reported. */
  add(
    keys: readonly KeyMaterial[],
    defaults: IdentityDefaults = {},
  ): { added: VaultIdentity[]; skipped: { key: KeyMaterial; existing: VaultIdentity }[] } {
    return this.retrying(() => this.addOnce(keys, defaults));
  }

  private addOnce(
    keys: readonly KeyMaterial[],
    defaults: IdentityDefaults,
  ): { added: VaultIdentity[]; skipped: { key: KeyMaterial; existing: VaultIdentity }[] } {
    const next = [...this.current];
    const added: VaultIdentity[] = [];
    const skipped: { key: KeyMaterial; existing: VaultIdentity }[] = [];
    for (const k of keys) {
      const existing = next.find((id) => id.publicBlob.equals(k.publicBlob));
      if (existing) {
        skipped.push({ key: k, existing });
        continue;
      }
      const id: VaultIdentity = {
        keyType: k.keyType,
        privateFields: Buffer.from(k.privateFields),
        publicBlob: Buffer.from(k.publicBlob),
        comment: k.comment,
        created: nowSeconds(),
      };
      applyDefaults(id, defaults);
      if (isSkKeyType(k.keyType)) id.skProvider = defaults.skProvider ?? 'internal';
      next.push(id);
      added.push(id);
    }
    if (added.length) this.commit(next);
    return { added, skipped };
  }

  /** Delete a key; what is returned keeps its public half and comment, its secret is overwritten. */
  remove(name: string): VaultIdentity {
    const victim = this.retrying(() => {
      const v = this.find(name);
      this.commit(
        this.current.filter((id) => id !== v),
        'new',
      );
      return v;
    });
    victim.privateFields.fill(0);
    return victim;
  }

  rename(name: string, newComment: string): VaultIdentity {
    checkComment(newComment);
    return this.retrying(() => this.renameOnce(name, newComment));
  }

  private renameOnce(name: string, newComment: string): VaultIdentity {
    const target = this.find(name);
    const clash = this.current.find((id) => id !== target && id.comment === newComment);
    if (clash)
      throw new VaultError(
        'INVALID',
        `another key (${fingerprint(clash.publicBlob)}) is already named "${newComment}": choose another name`,
      );
    const renamed = { ...target, comment: newComment };
    this.commit(this.current.map((id) => (id === target ? renamed : id)));
    return renamed;
  }

  /** Change per-key defaults (confirm, lifetime). */
  update(name: string, changes: IdentityDefaults): VaultIdentity {
    return this.retrying(() => {
      const target = this.find(name);
      const changed = { ...target };
      applyDefaults(changed, changes);
      this.commit(this.current.map((id) => (id === target ? changed : id)));
      return changed;
    });
  }

  /** Record that the agent used a key (for `list`). */
  touch(publicBlob: Buffer, when = nowSeconds()): void {
    this.retrying(() =>
      this.commit(
        this.current.map((id) =>
          id.publicBlob.equals(publicBlob) ? { ...id, lastUsed: when } : id,
        ),
      ),
    );
  }

  /** Re-encrypt under a new passphrase and/or KDF parameters, with a fresh salt. */
  async changePassphrase(newPassphrase: Buffer, kdf: KdfParams = this.vaultKey.kdf): Promise<void> {
    const key = await newVaultKey(newPassphrase, kdf);
    try {
      // Deriving took a while: the agent may have written meanwhile (retrying reads with the old key).
      this.retrying(() => {
        const bytes = sealVault(this.current, key, this.sections);
        this.file.write(bytes, this.sealedBytes, 'new');
        this.sealedBytes = bytes;
      });
    } catch (err) {
      wipeVaultKey(key);
      throw err;
    }
    wipeVaultKey(this.vaultKey);
    this.vaultKey = key;
  }

  /** Drop the decrypted material (overwriting the buffers Node lets us reach). */
  lock(): void {
    wipeIdentities(this.current);
    this.current = [];
    for (const s of this.sections) s.data.fill(0);
    this.sections = [];
    wipeVaultKey(this.vaultKey);
  }
}

function applyDefaults(id: VaultIdentity, d: IdentityDefaults): void {
  if (d.confirm !== undefined) {
    if (d.confirm) id.confirm = true;
    else delete id.confirm;
  }
  if (d.confirmForwarded !== undefined) {
    if (d.confirmForwarded) id.confirmForwarded = true;
    else delete id.confirmForwarded;
  }
  if (d.localOnly !== undefined) {
    if (d.localOnly) id.localOnly = true;
    else delete id.localOnly;
  }
  if (d.allow === null || d.clearAllow) delete id.allow;
  if (d.allow?.length) id.allow = [...new Set([...(id.allow ?? []), ...d.allow])];
  if (d.confirmWindow === null) delete id.confirmWindow;
  else if (d.confirmWindow !== undefined) {
    if (!Number.isInteger(d.confirmWindow) || d.confirmWindow < 0)
      throw new VaultError('INVALID', `confirm window must be seconds, not ${d.confirmWindow}`);
    id.confirmWindow = d.confirmWindow;
  }
  if (d.lifetime === null) delete id.lifetime;
  else if (d.lifetime !== undefined) {
    if (!Number.isInteger(d.lifetime) || d.lifetime <= 0)
      throw new VaultError(
        'INVALID',
        `lifetime must be a positive number of seconds, not ${d.lifetime}`,
      );
    id.lifetime = d.lifetime;
  }
}

/** Overwrite the private fields (identities that share a buffer are all wiped). */
function wipeIdentities(ids: readonly VaultIdentity[]): void {
  for (const id of ids) id.privateFields.fill(0);
}
