// What the test needs from the page, kept out of main.js (which is the README's snippet): the
// model URL and engine kind from the query string, the adapter's events and counters on
// `window`, and no deadline: SwiftShader takes ~7 s a token on this 32016-piece vocabulary, so
// the default maxTimeMs (2000) would cut every suggestion to its first token.
const params = new URLSearchParams(location.search);
window.MODEL = params.get('model') ?? '/models/tiny-gqa-q4_k_m.gguf';
window.USE_WORKER = params.get('worker') !== '0';
window.events = [];
window.TEST_OPTIONS = {
  maxTokens: Number(params.get('maxTokens') ?? 4),
  debounceMs: 300,
  maxTimeMs: null,
  onEvent: (e) => window.events.push(e.type === 'error' ? { ...e, error: `${e.error?.name}: ${e.error?.message}` } : e),
};
addEventListener('error', (e) => {
  document.body.dataset.status = 'error';
  document.body.dataset.error = String(e.message);
});
addEventListener('unhandledrejection', (e) => {
  document.body.dataset.status = 'error';
  document.body.dataset.error = `${e.reason?.name}: ${e.reason?.message}`;
});
