import { defineConfig } from 'vite';

// The dashboard compiles to static files in dist/, served by the executor service at /ui (executor/src/api/
// ui-static.ts): relative to /ui/, nothing fetched from anywhere else at run time, no inline script (the
// service's Content-Security-Policy allows this origin's files only).
export default defineConfig({
  base: '/ui/',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    assetsInlineLimit: 0,
    sourcemap: false,
    reportCompressedSize: false,
    modulePreload: { polyfill: false },
  },
});
