import { expect, test } from "@playwright/test";
import { adminPassword, baseUrl, hydrated, lfv, open, sigv4Headers, signIn } from "./helpers";

test("sign-in is required, a wrong password is refused, sign-out ends the session", async ({ page }) => {
  await page.goto("/projects");
  await expect(page).toHaveURL(/\/signin\?next=%2Fprojects/);
  await page.locator("#signin-name").fill("admin");
  await page.locator("#signin-password").fill("not-the-password");
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page).toHaveURL(/\/signin\?error=1/);
  await expect(page.getByRole("alert").filter({ hasText: "Wrong user name or password" })).toBeVisible();

  await signIn(page, "admin", adminPassword);
  await expect(page).toHaveURL(/\/projects$/);
  await hydrated(page);
  await expect(page.getByTestId("signed-in-user")).toHaveText("admin");

  await page.getByRole("button", { name: "Sign out" }).click();
  await expect(page).toHaveURL(/\/signin$/);
  await page.goto("/projects");
  await expect(page).toHaveURL(/\/signin\?next=/);
  // Without a session, server functions and media answer 401.
  const r = await page.request.post("/api/list_projects", { form: {} });
  expect(r.status()).toBe(401);
});

test("access keys: created with the secret shown once, used by an LFV client, revoked", async ({ page }) => {
  await open(page, "/admin");
  const description = `e2e-${Date.now()}`;
  await page.locator("#key-description").fill(description);
  await page.getByRole("button", { name: "Create access key" }).click();
  const id = (await page.getByTestId("new-key-id").textContent())!.trim();
  const secret = (await page.getByTestId("new-key-secret").textContent())!.trim();
  expect(id).toMatch(/^VKIA[A-Z2-7]{16}$/);
  expect(secret.length).toBe(40);
  const row = page.locator(`tr[data-key="${id}"]`);
  await expect(row).toContainText(description);

  const url = new URL("/2020-11-20/projects", baseUrl);
  const call = () => page.request.fetch(url.toString(), { method: "GET", headers: sigv4Headers("GET", url, Buffer.alloc(0), undefined, id, secret) });
  expect((await call()).status()).toBe(200);

  await row.getByRole("button", { name: "Revoke" }).click();
  await row.getByRole("button", { name: "Revoke key" }).click();
  await expect(row).toHaveCount(0);
  const refused = await call();
  expect(refused.status()).toBe(403);
  expect(refused.headers()["x-amzn-errortype"]).toBe("UnrecognizedClientException");
});

test("users: an administrator adds and removes a user, who can sign in meanwhile", async ({ page, browser }) => {
  await open(page, "/admin");
  const name = `operator-${Date.now()}`;
  await page.locator("#user-name").fill(name);
  await page.locator("#user-password").fill("operator-password");
  await page.getByRole("button", { name: "Add user" }).click();
  const row = page.locator(`tr[data-user="${name}"]`);
  await expect(row).toContainText("editor");

  const other = await browser.newContext({ baseURL: baseUrl });
  const theirs = await other.newPage();
  await theirs.goto("/signin");
  await signIn(theirs, name, "operator-password");
  await hydrated(theirs);
  await expect(theirs.getByTestId("signed-in-user")).toHaveText(name);

  await row.getByRole("button", { name: "Remove" }).click();
  await row.getByRole("button", { name: "Remove user" }).click();
  await expect(row).toHaveCount(0);
  await theirs.goto("/projects");
  await expect(theirs).toHaveURL(/\/signin/);
  await other.close();
});

test("a cross-origin POST with a valid session is refused and changes nothing", async ({ page }) => {
  await open(page, "/projects");
  const name = `cross-${Date.now()}`;
  const r = await page.request.post("/api/create_project", {
    headers: { Origin: "http://evil.example" },
    form: { name },
  });
  expect(r.status()).toBe(403);
  const listed = await (await lfv(page).get("/2020-11-20/projects")).json();
  expect(listed.Projects.map((p: { ProjectName: string }) => p.ProjectName)).not.toContain(name);
});
