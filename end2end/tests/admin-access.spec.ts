import { expect, test } from "@playwright/test";
import { baseUrl, hydrated, lfv, open, sigv4Headers, signIn } from "./helpers";

// Roles, access keys with policies and the audit log, as an administrator and a viewer see them. Every name has
// a timestamp, so the spec runs against a server other specs (or earlier runs) have used.

test.beforeEach(async ({ page }) => {
  page.on("pageerror", (err) => {
    throw err;
  });
});

test("a viewer is refused changes; a detect-only key; the audit log records both", async ({ page, browser }) => {
  test.setTimeout(180_000);
  const stamp = Date.now();
  const viewer = `viewer-${stamp}`;
  const password = "viewer-password";
  const project = `access-${stamp}`;
  // The detect-only key's project, made with the bootstrap key (administrator rights).
  expect((await lfv(page).post("/2020-11-20/projects", { ProjectName: project })).ok()).toBeTruthy();

  // The administrator adds a viewer; the form explains the role chosen.
  await open(page, "/admin");
  await expect(page.getByTestId("my-role")).toContainText("Your role: administrator");
  await expect(page.getByTestId("new-user-role")).toHaveValue("editor");
  await page.locator("#user-name").fill(viewer);
  await page.locator("#user-password").fill(password);
  await page.getByTestId("new-user-role").selectOption("viewer");
  await expect(page.locator("#user-role-help")).toHaveText("reads only: no changes, no detections");
  await page.getByRole("button", { name: "Add user" }).click();
  const userRow = page.locator(`tr[data-user="${viewer}"]`);
  await expect(userRow).toHaveAttribute("data-role", "viewer");
  await expect(page.getByTestId(`role-select-${viewer}`)).toHaveValue("viewer");

  // The role can be changed in the row (and back).
  await page.getByTestId(`role-select-${viewer}`).selectOption("editor");
  await expect(userRow).toHaveAttribute("data-role", "editor");
  await page.getByTestId(`role-select-${viewer}`).selectOption("viewer");
  await expect(userRow).toHaveAttribute("data-role", "viewer");
  await expect(page.getByTestId(`role-select-${viewer}`)).toHaveValue("viewer");

  // The viewer signs in elsewhere: sees the role, no users or audit log, and creating a project is refused
  // with the server's message naming the role.
  const other = await browser.newContext({ baseURL: baseUrl });
  const theirs = await other.newPage();
  theirs.on("pageerror", (err) => {
    throw err;
  });
  await theirs.goto("/signin");
  await signIn(theirs, viewer, password);
  await theirs.goto("/admin");
  await hydrated(theirs);
  await expect(theirs.getByTestId("my-role")).toContainText("Your role: viewer");
  await expect(theirs.getByTestId("my-role")).toContainText("reads only");
  await expect(theirs.getByTestId("audit-table")).toHaveCount(0);
  await expect(theirs.getByTestId("new-user-role")).toHaveCount(0);

  const refused = `refused-${stamp}`;
  await theirs.goto("/projects");
  await hydrated(theirs);
  await theirs.getByLabel("New project").fill(refused);
  await theirs.getByRole("button", { name: "Create project" }).click();
  await expect(theirs.locator("#project-name-error")).toContainText(/viewer/i);
  await expect(theirs.getByRole("link", { name: refused, exact: true })).toHaveCount(0);
  const listed = await (await lfv(page).get("/2020-11-20/projects")).json();
  expect(listed.Projects.map((p: { ProjectName: string }) => p.ProjectName)).not.toContain(refused);
  await other.close();

  // Back as the administrator: a custom policy starts from an example; a detect-only key for the project.
  await page.getByTestId("key-access").selectOption("custom");
  await expect(page.getByTestId("key-policy")).toHaveValue(/lookoutvision:DetectAnomalies/);
  await expect(page.getByTestId("key-projects")).toHaveCount(0);
  await page.getByTestId("key-access").selectOption("detect");
  await expect(page.getByTestId("key-policy")).toHaveCount(0);
  // Without a project it is not sent.
  await page.locator("#key-description").fill(`line-${stamp}`);
  await page.getByRole("button", { name: "Create access key" }).click();
  await expect(page.getByRole("alert").filter({ hasText: "Choose at least one project" })).toBeVisible();
  await page.getByTestId("key-projects").locator(`input[data-project="${project}"]`).check();
  await page.getByRole("button", { name: "Create access key" }).click();
  const id = (await page.getByTestId("new-key-id").textContent())!.trim();
  const secret = (await page.getByTestId("new-key-secret").textContent())!.trim();
  const keyRow = page.locator(`tr[data-key="${id}"]`);
  await expect(keyRow).toContainText(`line-${stamp}`);
  await expect(keyRow).toContainText(`Detect only: ${project}`);
  await expect(keyRow.locator(".policy-json")).toContainText("lookoutvision:DetectAnomalies");

  // The key may detect, not list: ListProjects is refused.
  const url = new URL("/2020-11-20/projects", baseUrl);
  const listing = await page.request.fetch(url.toString(), {
    method: "GET",
    headers: sigv4Headers("GET", url, Buffer.alloc(0), undefined, id, secret),
  });
  expect(listing.status()).toBe(403);

  // The bootstrap key says what it is, and offers no Revoke.
  const bootstrap = page.getByTestId("bootstrap-key");
  if ((await bootstrap.count()) > 0) {
    await expect(bootstrap).toContainText("bootstrap key");
    await expect(bootstrap).toContainText("Administrator");
    await expect(bootstrap).toContainText("Cannot be revoked here");
    await expect(bootstrap.getByRole("button", { name: "Revoke" })).toHaveCount(0);
  }

  // The audit log (read again: the viewer's attempt came from elsewhere).
  await page.reload();
  await hydrated(page);
  const table = page.getByTestId("audit-table");
  await expect(table).toBeVisible();
  await page.getByTestId("audit-filter-principal").fill("admin");
  await page.getByRole("button", { name: "Filter", exact: true }).click();
  for (const action of ["create_user", "create_key"]) {
    const row = table.locator(`tr.audit-row[data-principal="admin"][data-action*="${action}"]`).first();
    await expect(row).toHaveAttribute("data-outcome", "allowed");
    // Newest first: the first such row is this test's.
    expect(Number(await row.getAttribute("data-at"))).toBeGreaterThanOrEqual(stamp - 5_000);
  }

  // The viewer's refusal, with the outcome filter.
  await page.getByTestId("audit-filter-principal").fill(viewer);
  await page.getByTestId("audit-filter-outcome").selectOption("denied");
  await expect(table.locator(`tr.audit-row[data-principal="${viewer}"][data-action*="create_project"]`).first()).toHaveAttribute(
    "data-outcome",
    "denied",
  );
  await expect(table.locator('tr.audit-row:not([data-outcome="denied"])')).toHaveCount(0);

  // Export: the same filters as query parameters; JSON lines.
  const exportLink = page.getByTestId("audit-export");
  const href = `/audit/export.jsonl?principal=${encodeURIComponent(viewer)}&outcome=denied`;
  await expect(exportLink).toHaveAttribute("href", href);
  const exported = await page.request.get(href);
  expect(exported.status()).toBe(200);
  const lines = (await exported.text())
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l));
  expect(lines.length).toBeGreaterThan(0);
  for (const line of lines) {
    expect(JSON.stringify(line)).toContain('"denied"');
  }
  expect(lines.some((l) => JSON.stringify(l).includes(viewer) && JSON.stringify(l).includes("create_project"))).toBeTruthy();
});

test("an administrator signs a user out of every browser", async ({ page, browser }) => {
  const name = `signed-out-${Date.now()}`;
  await open(page, "/admin");
  await page.locator("#user-name").fill(name);
  await page.locator("#user-password").fill("copper kettle 42");
  await page.getByRole("button", { name: "Add user" }).click();
  await expect(page.locator(`tr[data-user="${name}"]`)).toBeVisible();

  const other = await browser.newContext({ baseURL: baseUrl });
  const theirs = await other.newPage();
  await theirs.goto("/signin");
  await signIn(theirs, name, "copper kettle 42");
  await hydrated(theirs);
  await expect(theirs.getByTestId("signed-in-user")).toHaveText(name);

  await page.getByTestId(`end-sessions-${name}`).click();
  await expect(page.getByTestId("user-sessions-ended")).toHaveText(`${name} was signed out of 1 session.`);
  await theirs.goto("/projects");
  await expect(theirs).toHaveURL(/\/signin/);
  await other.close();
});
