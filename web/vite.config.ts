import { defineConfig } from "vite";

// The build is served by `pricecat serve` at `/` (index.html at the root of dist/, hashed
// assets under /assets/); the API lives on the same origin under /api/v1.
// `npm run dev` proxies /api to a local `pricecat serve` (PRICECAT_API, default :8000).
export default defineConfig({
  base: "/",
  build: {
    outDir: "dist",
    assetsDir: "assets",
    emptyOutDir: true,
    sourcemap: false,
  },
  server: {
    proxy: {
      "/api": process.env.PRICECAT_API ?? "http://127.0.0.1:8000",
    },
  },
});
