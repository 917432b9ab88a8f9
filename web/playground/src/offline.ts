// Registers the service worker (public/sw.js) that keeps the app shell, the engine's wasm and
// the bundled model for offline use.
export async function registerServiceWorker(): Promise<void> {
  if (!('serviceWorker' in navigator)) return;
  try {
    await navigator.serviceWorker.register(new URL('./sw.js', document.baseURI), { scope: './' });
  } catch (e) {
    console.warn('service worker not registered:', e);
  }
}
