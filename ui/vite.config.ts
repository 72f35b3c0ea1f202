import { defineConfig } from "vitest/config";
import { svelte } from "@sveltejs/vite-plugin-svelte";

// The window loads ui/dist through Tauri's asset protocol; relative paths keep it working from
// any origin. Sounds are imported from ../assets (the repository's assets/ folder), so the dev
// server may read one level up.
export default defineConfig({
  plugins: [svelte()],
  base: "./",
  clearScreen: false,
  server: { port: 1420, strictPort: true, fs: { allow: [".."] } },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    // WebKitGTK on Debian 12 is far newer; Safari 15 keeps macOS 12 windows working too.
    target: ["es2022", "safari15"],
    cssCodeSplit: false,
    // Sounds must stay separate files (the CSP allows media from 'self' only, not data:).
    assetsInlineLimit: 0,
    reportCompressedSize: true,
  },
  test: {
    include: ["src/**/*.test.ts"],
    environment: "node",
  },
});
