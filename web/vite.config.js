import { defineConfig } from 'vite';

// The page is served by flotillad from the build tree (BUILD/web); the CMake
// target flotilla_web runs `vite build --outDir BUILD/web`.
export default defineConfig({
  base: './',
  build: {
    emptyOutDir: true,
    chunkSizeWarningLimit: 1500,
  },
});
