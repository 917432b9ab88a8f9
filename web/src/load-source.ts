/**
 * Opens a model source for loading, with the OPFS cache in front of URLs:
 * a complete cached copy is read from OPFS (no network request at all); otherwise the download
 * is teed into a new cache entry that the caller commits after a successful load.
 */

import { beginCacheWrite, deleteCachedModel, openCachedModel, type CacheWriter } from './opfs.js';
import { isUrlSource, openSource, openUrl, readBlob, resolveUrl, type OpenedSource } from './sources.js';
import type { ModelSource } from './types.js';

export interface LoadSource {
  totalBytes: number | null;
  chunks: AsyncIterable<Uint8Array>;
  fromCache: boolean;
  /** The response's Content-Type (URL sources fetched now), else `null`. */
  contentType: string | null;
  /** Call after the model loaded: marks the cache entry complete. */
  commit(): Promise<void>;
  /** Call when the load failed or was aborted: drops the partial entry (or a bad cached one). */
  discard(opts: { badCache: boolean }): Promise<void>;
}

/** Opens `source`; `cache` enables the OPFS cache for URL sources. */
export async function openLoadSource(
  source: ModelSource,
  opts: { signal?: AbortSignal; cache: boolean },
): Promise<LoadSource> {
  const { signal } = opts;
  if (!isUrlSource(source) || !opts.cache) {
    const opened = await openSource(source, signal === undefined ? {} : { signal });
    return plain(opened);
  }
  const url = resolveUrl(source);
  const cached = await openCachedModel(url);
  if (cached !== null) {
    return {
      totalBytes: cached.file.size,
      chunks: readBlob(cached.file, signal),
      fromCache: true,
      contentType: null,
      commit: async () => {},
      discard: async ({ badCache }) => {
        if (badCache) await deleteCachedModel(url);
      },
    };
  }
  const opened = await openUrl(url, signal === undefined ? { requestCache: 'no-store' } : { signal, requestCache: 'no-store' });
  const writer = await beginCacheWrite(url, {
    size: opened.totalBytes,
    etag: opened.etag ?? null,
    lastModified: opened.lastModified ?? null,
  });
  if (writer === null) return plain(opened);
  return {
    totalBytes: opened.totalBytes,
    chunks: tee(opened.chunks, writer),
    fromCache: false,
    contentType: opened.contentType ?? null,
    commit: async () => {
      await writer.commit();
    },
    discard: async () => {
      await opened.close?.();
      await writer.discard();
    },
  };
}

function plain(opened: OpenedSource): LoadSource {
  return {
    totalBytes: opened.totalBytes,
    chunks: opened.chunks,
    fromCache: false,
    contentType: opened.contentType ?? null,
    commit: async () => {},
    discard: async () => {
      await opened.close?.();
    },
  };
}

/** Writes every chunk to the cache while handing it on (the write runs alongside the consumer). */
async function* tee(chunks: AsyncIterable<Uint8Array>, writer: CacheWriter): AsyncGenerator<Uint8Array> {
  let pending: Promise<void> = Promise.resolve();
  try {
    for await (const chunk of chunks) {
      await pending; // at most one write in flight: bounded memory
      pending = writer.write(chunk);
      yield chunk;
    }
  } finally {
    await pending;
  }
}
