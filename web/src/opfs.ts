/**
 * Persistent model cache in the Origin Private File System (OPFS).
 *
 * Layout: directory `codellama-webgpu/` holding, per URL, `<sha256(url)>.gguf` (the bytes) and
 * `<sha256(url)>.json` (a {@link CacheEntryMeta} sidecar). An entry is used only when its sidecar
 * says `complete: true` and the file has the recorded size; entries are keyed by URL alone (no
 * revalidation, so it works offline): use versioned URLs, or {@link deleteCachedModel}.
 *
 * Every function degrades silently (no cache) where OPFS is unavailable. A write that fails
 * (quota) drops the entry; {@link CacheWriter.failure} keeps why, for the load to report or,
 * with `cache: 'required'`, to throw. {@link storageRoom} and {@link requestPersistence} wrap
 * `navigator.storage.estimate()` / `persist()`.
 */

const DIR_NAME = 'codellama-webgpu';

/** The sidecar JSON of a cache entry. */
export interface CacheEntryMeta {
  url: string;
  size: number;
  etag: string | null;
  lastModified: string | null;
  complete: boolean;
  /** `Date.now()` when the entry was (last) written. */
  savedAt: number;
}

/** A complete cached model, as listed by {@link listCachedModels}. */
export interface CachedModel {
  url: string;
  bytes: number;
  savedAt: number;
}

// Minimal structural types so this file needs no lib beyond DOM (OPFS typings vary by TS version).
interface Writable {
  write(data: Uint8Array | BufferSource): Promise<void>;
  close(): Promise<void>;
  abort(reason?: unknown): Promise<void>;
}
interface FileHandle {
  getFile(): Promise<File>;
  createWritable?: (opts?: { keepExistingData?: boolean }) => Promise<Writable>;
}
interface DirHandle {
  getDirectoryHandle(name: string, opts?: { create?: boolean }): Promise<DirHandle>;
  getFileHandle(name: string, opts?: { create?: boolean }): Promise<FileHandle>;
  removeEntry(name: string): Promise<void>;
  keys?: () => AsyncIterableIterator<string>;
}

let dirPromise: Promise<DirHandle | null> | null = null;

/** The cache directory, or `null` where OPFS is unavailable. */
async function cacheDir(): Promise<DirHandle | null> {
  dirPromise ??= (async () => {
    try {
      const storage = (globalThis as { navigator?: { storage?: { getDirectory?: () => Promise<DirHandle> } } })
        .navigator?.storage;
      if (typeof storage?.getDirectory !== 'function') return null;
      const root = await storage.getDirectory();
      return await root.getDirectoryHandle(DIR_NAME, { create: true });
    } catch {
      return null;
    }
  })();
  const d = await dirPromise;
  if (d === null) dirPromise = null; // allow a later retry (e.g. permission changes)
  return d;
}

/** `true` where OPFS can hold a model cache. */
export async function isCacheAvailable(): Promise<boolean> {
  return (await cacheDir()) !== null;
}

/** Hex SHA-256 of the URL (FNV-1a 64 where `crypto.subtle` is missing). */
async function keyOf(url: string): Promise<string> {
  const data = new TextEncoder().encode(url);
  const subtle = (globalThis as { crypto?: Crypto }).crypto?.subtle;
  if (subtle !== undefined) {
    const h = new Uint8Array(await subtle.digest('SHA-256', data));
    return Array.from(h, (b) => b.toString(16).padStart(2, '0')).join('');
  }
  let h = 0xcbf29ce484222325n;
  for (const b of data) h = BigInt.asUintN(64, (h ^ BigInt(b)) * 0x100000001b3n);
  return `fnv-${h.toString(16).padStart(16, '0')}`;
}

async function readMeta(dir: DirHandle, key: string): Promise<CacheEntryMeta | null> {
  try {
    const f = await (await dir.getFileHandle(`${key}.json`)).getFile();
    const m = JSON.parse(await f.text()) as CacheEntryMeta;
    return typeof m === 'object' && m !== null && typeof m.url === 'string' ? m : null;
  } catch {
    return null;
  }
}

async function writeMeta(dir: DirHandle, key: string, meta: CacheEntryMeta): Promise<void> {
  const h = await dir.getFileHandle(`${key}.json`, { create: true });
  if (typeof h.createWritable !== 'function') throw new Error('createWritable unavailable');
  const w = await h.createWritable({ keepExistingData: false });
  await w.write(new TextEncoder().encode(JSON.stringify(meta)));
  await w.close();
}

async function removeEntry(dir: DirHandle, key: string): Promise<void> {
  await dir.removeEntry(`${key}.gguf`).catch(() => {});
  await dir.removeEntry(`${key}.json`).catch(() => {});
}

/** A complete cached copy of `url`, or `null`. */
export async function openCachedModel(url: string): Promise<{ file: File; meta: CacheEntryMeta } | null> {
  try {
    const dir = await cacheDir();
    if (dir === null) return null;
    const key = await keyOf(url);
    const meta = await readMeta(dir, key);
    if (meta === null || !meta.complete || meta.url !== url) return null;
    const file = await (await dir.getFileHandle(`${key}.gguf`)).getFile();
    if (file.size !== meta.size) {
      await removeEntry(dir, key);
      return null;
    }
    return { file, meta };
  } catch {
    return null;
  }
}

/** Writes a download into the cache; see {@link beginCacheWrite}. */
export interface CacheWriter {
  /** Appends bytes. Never throws: on failure (quota…) the entry is dropped and later writes are no-ops. */
  write(chunk: Uint8Array): Promise<void>;
  /** The error that made a write (or the commit) fail, `null` while none did. */
  readonly failure: unknown;
  /** Marks the entry complete (call after the whole file arrived and loaded). Never throws. */
  commit(): Promise<boolean>;
  /** Deletes the partial entry. Never throws. */
  discard(): Promise<void>;
}

/**
 * Starts caching a download of `url`, or returns `null` where OPFS (or `createWritable`) is
 * unavailable. The sidecar is written with `complete: false` first, so an interrupted download
 * is never taken for a complete one.
 */
export async function beginCacheWrite(
  url: string,
  info: { size: number | null; etag?: string | null; lastModified?: string | null },
): Promise<CacheWriter | null> {
  let dir: DirHandle | null;
  let key: string;
  let writable: Writable;
  const meta: CacheEntryMeta = {
    url,
    size: info.size ?? 0,
    etag: info.etag ?? null,
    lastModified: info.lastModified ?? null,
    complete: false,
    savedAt: Date.now(),
  };
  try {
    dir = await cacheDir();
    if (dir === null) return null;
    key = await keyOf(url);
    await removeEntry(dir, key);
    const fh = await dir.getFileHandle(`${key}.gguf`, { create: true });
    if (typeof fh.createWritable !== 'function') {
      await removeEntry(dir, key);
      return null;
    }
    await writeMeta(dir, key, meta);
    writable = await fh.createWritable({ keepExistingData: false });
  } catch {
    return null;
  }
  const d = dir;
  let written = 0;
  let state: 'open' | 'failed' | 'done' = 'open';
  let failure: unknown = null;
  const fail = async (why: unknown = new Error('the cache entry was discarded')): Promise<void> => {
    if (state !== 'open') return;
    state = 'failed';
    failure = why;
    await writable.abort().catch(() => {});
    await removeEntry(d, key);
  };
  return {
    get failure() {
      return failure;
    },
    async write(chunk) {
      if (state !== 'open') return;
      try {
        await writable.write(chunk);
        written += chunk.byteLength;
      } catch (e) {
        await fail(e);
      }
    },
    async commit() {
      if (state !== 'open') return false;
      if (info.size !== null && written !== info.size) {
        await fail(new Error(`${written} of ${info.size} bytes were written`));
        return false;
      }
      try {
        await writable.close();
        state = 'done';
        await writeMeta(d, key, { ...meta, size: written, complete: true, savedAt: Date.now() });
        return true;
      } catch (e) {
        state = 'open';
        await fail(e);
        return false;
      }
    },
    async discard() {
      if (state === 'done') {
        await removeEntry(d, key);
        return;
      }
      await fail();
    },
  };
}

interface StorageManagerLike {
  estimate?: () => Promise<{ quota?: number; usage?: number }>;
  persist?: () => Promise<boolean>;
  persisted?: () => Promise<boolean>;
}

function storageManager(): StorageManagerLike | undefined {
  return (globalThis as { navigator?: { storage?: StorageManagerLike } }).navigator?.storage;
}

/**
 * Bytes the origin may still store (`navigator.storage.estimate()`: quota − usage), `null` where
 * the browser does not say.
 */
export async function storageRoom(): Promise<number | null> {
  const storage = storageManager();
  if (typeof storage?.estimate !== 'function') return null;
  try {
    const { quota, usage } = await storage.estimate();
    if (typeof quota !== 'number' || !Number.isFinite(quota)) return null;
    return Math.max(0, quota - (typeof usage === 'number' ? usage : 0));
  } catch {
    return null;
  }
}

let persistence: Promise<boolean | null> | null = null;

/**
 * Asks the browser to keep the origin's storage under pressure (`navigator.storage.persist()`),
 * once per page (a granted answer is kept; a refusal is asked again on a later store). Resolves
 * to the answer, `null` where the API is missing.
 */
export function requestPersistence(): Promise<boolean | null> {
  persistence ??= (async () => {
    const storage = storageManager();
    if (typeof storage?.persist !== 'function') return null;
    try {
      if (typeof storage.persisted === 'function' && (await storage.persisted())) return true;
      return await storage.persist();
    } catch {
      return null;
    }
  })();
  const asked = persistence;
  void asked.then((granted) => {
    if (granted !== true && persistence === asked) persistence = null;
  });
  return asked;
}

/** The complete models in the cache. Incomplete leftovers (from a closed tab) are removed. */
export async function listCachedModels(): Promise<CachedModel[]> {
  const dir = await cacheDir();
  if (dir === null || typeof dir.keys !== 'function') return [];
  const out: CachedModel[] = [];
  const keys: string[] = [];
  try {
    for await (const name of dir.keys()) if (name.endsWith('.json')) keys.push(name.slice(0, -5));
    for (const key of keys) {
      const meta = await readMeta(dir, key);
      let size = -1;
      try {
        size = (await (await dir.getFileHandle(`${key}.gguf`)).getFile()).size;
      } catch {
        /* missing */
      }
      if (meta !== null && meta.complete && size === meta.size) {
        out.push({ url: meta.url, bytes: meta.size, savedAt: meta.savedAt });
      } else if (meta === null || meta.complete || Date.now() - meta.savedAt > 24 * 3600 * 1000) {
        // Broken, or an incomplete entry old enough not to be a download in progress.
        await removeEntry(dir, key);
      }
    }
  } catch {
    /* listing is best effort */
  }
  return out.sort((a, b) => b.savedAt - a.savedAt);
}

/** Deletes the cached copy of `url` (resolved against the current location). Returns whether one existed. */
export async function deleteCachedModel(url: string | URL): Promise<boolean> {
  const dir = await cacheDir();
  if (dir === null) return false;
  const abs = absolute(url);
  const key = await keyOf(abs);
  const existed = (await readMeta(dir, key)) !== null;
  await removeEntry(dir, key);
  return existed;
}

/** Deletes every cached model. */
export async function clearModelCache(): Promise<void> {
  const dir = await cacheDir();
  if (dir === null || typeof dir.keys !== 'function') return;
  const names: string[] = [];
  for await (const name of dir.keys()) names.push(name);
  for (const n of names) await dir.removeEntry(n).catch(() => {});
}

function absolute(url: string | URL): string {
  const base = (globalThis as { location?: { href: string } }).location?.href;
  try {
    return base === undefined ? new URL(String(url)).href : new URL(String(url), base).href;
  } catch {
    return String(url);
  }
}
