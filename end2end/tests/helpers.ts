import { expect, Page } from "@playwright/test";
import * as crypto from "crypto";
import * as path from "path";

/** The cookie images and masks the Rust tests use too. */
export const fixtures = path.join(__dirname, "..", "..", "server", "tests", "fixtures", "cookies");

/** Waits for the app to mark the body as hydrated: interactions before that are lost. */
export async function hydrated(page: Page) {
  // A debug WASM bundle compiles slowly on a loaded 2-core machine: allow for it.
  await expect(page.locator("body[data-hydrated=true]")).toBeAttached({ timeout: 45_000 });
}

/** Opens a page (signing in first when the console asks for it) and waits for it to hydrate. */
export async function open(page: Page, url: string) {
  await page.goto(url);
  if (new URL(page.url()).pathname === "/signin") {
    await signIn(page);
    // Signing in may land elsewhere (the projects list) before or instead of the page asked for: go there again.
    if (new URL(page.url()).pathname !== new URL(url, baseUrl).pathname) {
      await page.goto(url);
    }
  }
  await hydrated(page);
}

/** The end-to-end server's base URL, its bootstrap API key and the console admin's password (test.sh sets them). */
export const baseUrl = process.env.VIGIL_E2E_URL ?? "http://127.0.0.1:3000";
const accessKeyId = process.env.VIGIL_E2E_ACCESS_KEY_ID ?? "";
const secretAccessKey = process.env.VIGIL_E2E_SECRET_ACCESS_KEY ?? "";
export const adminPassword = process.env.VIGIL_E2E_ADMIN_PASSWORD ?? "";

/** Signs in through the sign-in page (going there first unless the page is on it already). */
export async function signIn(page: Page, name = "admin", password = adminPassword) {
  if (new URL(page.url()).pathname !== "/signin") {
    await page.goto("/signin");
  }
  await page.locator("#signin-name").fill(name);
  await page.locator("#signin-password").fill(password);
  await Promise.all([
    page.waitForURL((u) => u.pathname !== "/signin"),
    page.getByRole("button", { name: "Sign in" }).click(),
  ]);
}

/** SigV4's URI encoding: everything but A-Z a-z 0-9 - _ . ~ */
function sigv4Encode(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase());
}

function hmac(key: crypto.BinaryLike, data: string): Buffer {
  return crypto.createHmac("sha256", key).update(data).digest();
}

/** The SigV4 headers (authorization, x-amz-date) for a request to the LFV API, as an AWS SDK signs it. */
export function sigv4Headers(method: string, url: URL, body: Buffer, contentType?: string, key = accessKeyId, secret = secretAccessKey) {
  const amzDate = new Date().toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
  const day = amzDate.slice(0, 8);
  // The path as sent (already encoded), encoded once more, as for every AWS service but S3.
  const path = url.pathname.split("/").map(sigv4Encode).join("/");
  const query = [...url.searchParams.entries()]
    .map(([k, v]) => [sigv4Encode(k), sigv4Encode(v)])
    .sort(([a, b], [c, d]) => (a < c ? -1 : a > c ? 1 : b < d ? -1 : b > d ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join("&");
  const headers: Record<string, string> = { host: url.host, "x-amz-date": amzDate };
  if (contentType) headers["content-type"] = contentType;
  const names = Object.keys(headers).sort();
  const canonical = [
    method,
    path,
    query,
    names.map((n) => `${n}:${headers[n]}\n`).join(""),
    names.join(";"),
    crypto.createHash("sha256").update(body).digest("hex"),
  ].join("\n");
  const scope = `${day}/us-east-1/lookoutvision/aws4_request`;
  const toSign = ["AWS4-HMAC-SHA256", amzDate, scope, crypto.createHash("sha256").update(canonical).digest("hex")].join("\n");
  let k = hmac(`AWS4${secret}`, day);
  for (const part of ["us-east-1", "lookoutvision", "aws4_request"]) k = hmac(k, part);
  const signature = crypto.createHmac("sha256", k).update(toSign).digest("hex");
  const out: Record<string, string> = {
    "x-amz-date": amzDate,
    authorization: `AWS4-HMAC-SHA256 Credential=${key}/${scope}, SignedHeaders=${names.join(";")}, Signature=${signature}`,
  };
  if (contentType) out["content-type"] = contentType;
  return out;
}

/** The LFV API through the page's request context, signed with the bootstrap key (JSON bodies). */
export function lfv(page: Page) {
  const send = (method: string, path: string, data?: unknown) => {
    const url = new URL(path, baseUrl);
    const body = data === undefined ? Buffer.alloc(0) : Buffer.from(JSON.stringify(data));
    const headers = sigv4Headers(method, url, body, data === undefined ? undefined : "application/json");
    return page.request.fetch(url.toString(), { method, headers, data: data === undefined ? undefined : body });
  };
  return {
    get: (path: string) => send("GET", path),
    post: (path: string, data: unknown = {}) => send("POST", path, data),
    delete: (path: string) => send("DELETE", path),
    /** A raw body with its content type (DetectAnomalies). */
    postBytes: (path: string, body: Buffer, contentType: string) => {
      const url = new URL(path, baseUrl);
      const headers = sigv4Headers("POST", url, body, contentType);
      return page.request.fetch(url.toString(), { method: "POST", headers, data: body });
    },
  };
}
