import { expect, test } from "@playwright/test";
import { hydrated, open } from "./helpers";

test.beforeEach(async ({ page }) => {
  page.on("console", (msg) => {
    // A refused request (4xx) is expected where a test provokes one; anything else is a failure.
    const expected = /Failed to load resource: the server responded with a status of 4\d\d/.test(msg.text());
    if (msg.type() === "error" && !expected) throw new Error(`console error: ${msg.text()}`);
  });
  page.on("pageerror", (err) => {
    throw err;
  });
});

test("create a project, see it listed after a reload, then delete it", async ({ page }) => {
  const name = `e2e-${Date.now()}`;
  await open(page, "/projects");
  await expect(page.getByRole("heading", { name: "Projects", level: 1 })).toBeVisible();

  await page.getByLabel("New project").fill(name);
  await page.getByRole("button", { name: "Create project" }).click();
  const link = page.getByRole("link", { name, exact: true });
  await expect(link).toBeVisible();
  await expect(page.getByLabel("New project")).toHaveValue("");

  await page.reload();
  await hydrated(page);
  await expect(page.getByRole("link", { name, exact: true })).toBeVisible();

  await page.getByRole("link", { name, exact: true }).click();
  await expect(page).toHaveURL(new RegExp(`/projects/${name}$`));
  await expect(page.getByRole("heading", { name, level: 1 })).toBeVisible();
  await expect(page.getByText(`project/${name}`)).toBeVisible();

  await page.getByRole("button", { name: "Delete project…" }).click();
  await expect(page.getByText(`Delete ${name} permanently?`)).toBeVisible();
  // Cancelling keeps it.
  await page.getByRole("button", { name: "Cancel" }).click();
  await page.getByRole("button", { name: "Delete project…" }).click();
  await page.getByRole("button", { name: "Delete permanently" }).click();

  await expect(page).toHaveURL(/\/projects$/);
  await expect(page.getByRole("link", { name, exact: true })).toHaveCount(0);
  await page.reload();
  await expect(page.getByRole("heading", { name: "Projects", level: 1 })).toBeVisible();
  await expect(page.getByRole("link", { name, exact: true })).toHaveCount(0);
});

test("a bad name shows the validation message and creates nothing", async ({ page }) => {
  await open(page, "/projects");
  const input = page.getByLabel("New project");
  await input.fill("bad name!");
  await expect(page.getByRole("alert").filter({ hasText: "only letters, digits, hyphens and underscores" })).toBeVisible();
  await expect(input).toHaveAttribute("aria-invalid", "true");
  await page.getByRole("button", { name: "Create project" }).click();
  await expect(page.getByRole("link", { name: "bad name!" })).toHaveCount(0);

  await input.fill("-leading");
  await expect(page.getByRole("alert").filter({ hasText: "must start with a letter or a digit" })).toBeVisible();

  // The server's own answer is shown too: a duplicate name.
  const name = `dup-${Date.now()}`;
  await input.fill(name);
  await expect(input).toHaveAttribute("aria-invalid", "false");
  await page.getByRole("button", { name: "Create project" }).click();
  await expect(page.getByRole("link", { name, exact: true })).toBeVisible();
  await input.fill(name);
  await page.getByRole("button", { name: "Create project" }).click();
  await expect(page.getByRole("alert").filter({ hasText: "already exists" })).toBeVisible();
});

test("navigation and the dashboard", async ({ page }) => {
  await open(page, "/");
  await page.getByRole("link", { name: "Dashboard" }).click();
  await expect(page.getByRole("heading", { name: "Dashboard", level: 1 })).toBeVisible();
  await expect(page.getByRole("heading", { name: /Overview · last 7 days/ })).toBeVisible();
  await page.getByRole("link", { name: "24 hours" }).click();
  await expect(page.getByRole("heading", { name: /Overview · last 24 hours/ })).toBeVisible();
  await expect(page).toHaveURL(/hours=24$/);
  await page.getByRole("link", { name: "Projects" }).first().click();
  await expect(page.getByRole("heading", { name: "Projects", level: 1 })).toBeVisible();
});
