// The playground's service worker: after one visit, the app shell, the engine's wasm and the
// bundled model come from the cache, so the page works with the network off. The list of files
// and their content hashes (precache.json) is written by scripts/build-playground.sh; a new build
// has a new version, installs a new cache and deletes the old one.
/* eslint-env serviceworker */
const PREFIX = 'codellama-playground-';

async function manifest() {
  const r = await fetch('./precache.json', { cache: 'no-store' });
  if (!r.ok) throw new Error(`precache.json: HTTP ${r.status}`);
  return r.json();
}

self.addEventListener('install', (event) => {
  event.waitUntil((async () => {
    const m = await manifest();
    const cache = await caches.open(PREFIX + m.version);
    await cache.addAll(m.files.map((f) => new Request(f, { cache: 'no-store' })));
    await cache.put('./precache.json', new Response(JSON.stringify(m), { headers: { 'content-type': 'application/json' } }));
    await self.skipWaiting();
  })());
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    const current = await caches.keys();
    const m = await (await caches.match('./precache.json'))?.json().catch(() => null);
    for (const k of current) if (k.startsWith(PREFIX) && (!m || k !== PREFIX + m.version)) await caches.delete(k);
    await self.clients.claim();
  })());
});

self.addEventListener('fetch', (event) => {
  const req = event.request;
  const url = new URL(req.url);
  // Only this origin's GETs; model URLs the user typed (other origins) go to the network.
  if (req.method !== 'GET' || url.origin !== self.location.origin) return;
  event.respondWith((async () => {
    const keys = (await caches.keys()).filter((k) => k.startsWith(PREFIX));
    for (const k of keys.reverse()) {
      const cache = await caches.open(k);
      const hit = await cache.match(req, { ignoreSearch: true }) ?? (req.mode === 'navigate' ? await cache.match('./index.html') : undefined);
      if (hit) return hit;
    }
    return fetch(req);
  })());
});
