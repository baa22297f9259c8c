import { defineConfig } from "@playwright/test";

// Debian's Chromium, never a downloaded browser. The server is started by server/scripts/test.sh,
// which passes its address in VIGIL_E2E_URL.
export default defineConfig({
  testDir: "./tests",
  timeout: 60_000,
  expect: { timeout: 15_000 },
  fullyParallel: false,
  workers: 1,
  // One retry: on a loaded 2-core box the first fetch of the browser bundle has come back 404 (Leptos' file
  // handler answered any non-200 as 404), leaving the page unhydrated; a real failure fails twice. The server
  // now retries a file it could not read and logs why (lib.rs `static_files`): the log says if it recurs.
  retries: 1,
  reporter: [["list"]],
  use: {
    baseURL: process.env.VIGIL_E2E_URL ?? "http://127.0.0.1:3000",
    headless: true,
    trace: "retain-on-failure",
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--no-first-run",
        "--disable-dev-shm-usage",
      ],
    },
  },
});
