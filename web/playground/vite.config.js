// The playground is static files: relative asset URLs (served from any path), module workers.
// One copy of CodeMirror: the package's editor extension (codellama-webgpu/codemirror) imports
// its peer @codemirror/* packages, which must be the playground's own.
import { defineConfig } from 'vite';

export default defineConfig({
  base: './',
  build: { outDir: 'dist', emptyOutDir: true, target: 'es2022', chunkSizeWarningLimit: 2048 },
  resolve: { dedupe: ['@codemirror/state', '@codemirror/view'] },
  worker: { format: 'es' },
});
