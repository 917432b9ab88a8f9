// A minimal app as a user would write it: import the package by name, no bundler config.
import { createEngine, createWorkerEngine, WorkerEngine } from 'codellama-webgpu';

const params = new URLSearchParams(location.search);
const model = params.get('model') ?? '/models/tiny-gqa-q4_k_m.gguf';
const useWorker = params.get('worker') === '1';
const status = document.getElementById('status');
const result = document.getElementById('result');

async function main() {
  const engine = useWorker ? await createWorkerEngine() : await createEngine();
  status.textContent = `loading ${model} (${useWorker ? 'worker' : 'in-page'} engine)…`;
  const info = await engine.load(model, {
    onProgress: (p) => (status.textContent = `loading: ${p.bytesDone} / ${p.bytesTotal} bytes (${p.tensor ?? ''})`),
  });
  status.textContent = `loaded ${info.name} (${info.nLayers} layers); generating…`;
  let text = '';
  const gen = engine.complete('def fibonacci(n):\n    ', { maxTokens: 8, temperature: 0 });
  for await (const piece of gen) {
    text += piece;
    result.textContent = text;
  }
  const stats = await gen.stats;
  result.textContent = JSON.stringify({ engine: engine instanceof WorkerEngine ? 'WorkerEngine' : 'Engine', text, stats });
  status.textContent = 'done';
  document.body.dataset.status = 'done';
}

main().catch((e) => {
  result.textContent = `${e?.name}: ${e?.message}`;
  status.textContent = 'error';
  document.body.dataset.status = 'error';
  console.error(e);
});
