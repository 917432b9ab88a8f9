/** URLs of the package's own files, for the cases bundlers miss. */

/**
 * Vite's dev server pre-bundles dependencies into `node_modules/.vite/deps/` without the files
 * they reference with `new URL(…, import.meta.url)` (vitejs/vite#8427). When this module runs
 * from there, point at the package's own copy instead (production builds are unaffected).
 */
export function packageFileUrl(file: string): string | undefined {
  const here = import.meta.url.split(/[?#]/)[0] ?? '';
  const m = /^(.*\/node_modules\/)\.vite\/deps[^/]*\/[^/]+$/.exec(here);
  return m === null ? undefined : `${m[1]}codellama-webgpu/dist/${file}`;
}
