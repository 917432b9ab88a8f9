/**
 * Opens a model source for loading, with the OPFS cache in front of URLs:
 * a complete cached copy is read from OPFS (no network request at all); otherwise the download
 * is teed into a new cache entry that the caller commits after a successful load.
 *
 * Storage: before the download, `navigator.storage.estimate()` must leave room for the file
 * (else the cache is skipped); a write that fails (quota) drops the entry and the load goes on;
 * once a model is stored, `navigator.storage.persist()` is requested. What happened is the
 * {@link CacheReport} of `commit()`. With `cache: 'required'` each of those failures rejects
 * instead (`StorageQuotaError`; `InvalidRequestError` where OPFS is missing).
 */

import { InvalidRequestError, StorageQuotaError, toCodeLlamaError } from './errors.js';
import { beginCacheWrite, deleteCachedModel, openCachedModel, requestPersistence, storageRoom, type CacheWriter } from './opfs.js';
import { isUrlSource, openSource, openUrl, readBlob, resolveUrl, type OpenedSource } from './sources.js';
import type { CacheReport, ModelSource } from './types.js';

/** Room kept free beside the model when checking the quota (the sidecar, other entries' growth). */
const QUOTA_MARGIN_BYTES = 1024 * 1024;

export interface LoadSource {
  totalBytes: number | null;
  chunks: AsyncIterable<Uint8Array>;
  fromCache: boolean;
  /** The response's Content-Type (URL sources fetched now), else `null`. */
  contentType: string | null;
  /** Call after the model loaded: marks the cache entry complete; says what the cache did. */
  commit(): Promise<CacheReport>;
  /** Call when the load failed or was aborted: drops the partial entry (or a bad cached one). */
  discard(opts: { badCache: boolean }): Promise<void>;
}

/** Opens `source`; `cache` enables the OPFS cache for URL sources. */
export async function openLoadSource(
  source: ModelSource,
  opts: { signal?: AbortSignal; cache: boolean | 'required' },
): Promise<LoadSource> {
  const { signal } = opts;
  const required = opts.cache === 'required';
  if (!isUrlSource(source) || opts.cache === false) {
    const opened = await openSource(source, signal === undefined ? {} : { signal });
    return plain(opened, { status: 'off', note: null, persisted: null });
  }
  const url = resolveUrl(source);
  const cached = await openCachedModel(url);
  if (cached !== null) {
    return {
      totalBytes: cached.file.size,
      chunks: readBlob(cached.file, signal),
      fromCache: true,
      contentType: null,
      commit: async () => ({ status: 'hit', note: null, persisted: null }),
      discard: async ({ badCache }) => {
        if (badCache) await deleteCachedModel(url);
      },
    };
  }
  const opened = await openUrl(url, signal === undefined ? { requestCache: 'no-store' } : { signal, requestCache: 'no-store' });
  const skip = async (note: string, error: Error): Promise<LoadSource> => {
    if (required) {
      await opened.close?.();
      throw error;
    }
    return plain(opened, { status: 'skipped', note, persisted: null });
  };
  const room = await storageRoom();
  if (room !== null && opened.totalBytes !== null && opened.totalBytes + QUOTA_MARGIN_BYTES > room) {
    const note = `not cached: the model takes ${opened.totalBytes} bytes and navigator.storage.estimate() leaves ${room}`;
    return skip(note, new StorageQuotaError(`cache: 'required' but ${note.slice('not cached: '.length)}`));
  }
  const writer = await beginCacheWrite(url, {
    size: opened.totalBytes,
    etag: opened.etag ?? null,
    lastModified: opened.lastModified ?? null,
  });
  if (writer === null) {
    const note = 'not cached: the Origin Private File System (with createWritable) is not available here';
    return skip(note, new InvalidRequestError(`cache: 'required' but ${note.slice('not cached: '.length)}`));
  }
  return {
    totalBytes: opened.totalBytes,
    chunks: tee(opened.chunks, writer, required),
    fromCache: false,
    contentType: opened.contentType ?? null,
    commit: async () => {
      if (await writer.commit()) return { status: 'stored', note: null, persisted: await requestPersistence() };
      const why = describe(writer.failure);
      if (required) throw storageError(writer.failure, `writing the model cache failed: ${why}`);
      return { status: 'skipped', note: `not cached: writing the model cache failed: ${why}`, persisted: null };
    },
    discard: async () => {
      await opened.close?.();
      await writer.discard();
    },
  };
}

function describe(e: unknown): string {
  if (e === null || e === undefined) return 'unknown error';
  const name = (e as { name?: unknown }).name;
  const message = (e as { message?: unknown }).message;
  return typeof message === 'string' ? `${typeof name === 'string' && name !== 'Error' ? `${name}: ` : ''}${message}` : String(e);
}

/** A failed cache write as thrown with `cache: 'required'`: quota errors are StorageQuotaError. */
function storageError(e: unknown, message: string): Error {
  const mapped = toCodeLlamaError(e);
  return mapped instanceof StorageQuotaError ? new StorageQuotaError(message, { cause: e }) : mapped;
}

function plain(opened: OpenedSource, report: CacheReport): LoadSource {
  return {
    totalBytes: opened.totalBytes,
    chunks: opened.chunks,
    fromCache: false,
    contentType: opened.contentType ?? null,
    commit: async () => report,
    discard: async () => {
      await opened.close?.();
    },
  };
}

/**
 * Writes every chunk to the cache while handing it on (the write runs alongside the consumer).
 * `required`: a failed write ends the load (`StorageQuotaError` for a quota failure).
 */
async function* tee(chunks: AsyncIterable<Uint8Array>, writer: CacheWriter, required: boolean): AsyncGenerator<Uint8Array> {
  let pending: Promise<void> = Promise.resolve();
  const check = () => {
    if (required && writer.failure !== null) {
      throw storageError(writer.failure, `writing the model cache failed: ${describe(writer.failure)}`);
    }
  };
  try {
    for await (const chunk of chunks) {
      await pending; // at most one write in flight: bounded memory
      check();
      pending = writer.write(chunk);
      yield chunk;
    }
    await pending;
    check();
  } finally {
    await pending;
  }
}
