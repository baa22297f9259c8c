import { expect, test } from "@playwright/test";
import { open } from "./helpers";

// The console runs under its Content-Security-Policy: every page hydrates (its scripts carry the response's
// nonce, its WebAssembly may compile) and the browser reports no violation on any of the main pages.
test("every main page hydrates under the Content-Security-Policy with no violation", async ({ page }) => {
  const violations: string[] = [];
  page.on("console", (m) => {
    if (/Content Security Policy/i.test(m.text())) violations.push(m.text());
  });
  await page.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) => {
      console.error(`Content Security Policy violation: ${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  for (const url of ["/projects", "/dashboard", "/admin"]) {
    const response = await page.request.get(url);
    const policy = response.headers()["content-security-policy"] ?? "";
    expect(policy).toContain("script-src 'self' 'nonce-");
    expect(policy).toContain("'wasm-unsafe-eval'");
    expect(policy).toContain("frame-ancestors 'none'");
    // Hydration needs the inline scripts (nonce) and the WebAssembly ('wasm-unsafe-eval'): it is the proof.
    await open(page, url);
  }
  expect(violations).toEqual([]);
});
