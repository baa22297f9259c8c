import { expect, test } from "@playwright/test";
import { baseUrl, hydrated, lfv, open } from "./helpers";

// Named to run first (Playwright takes the files in name order, one worker): it needs the fresh server's empty
// projects page, which is what a new user meets.

test.beforeEach(async ({ page }) => {
  page.on("pageerror", (err) => {
    throw err;
  });
});

test("a new user: the empty projects page offers sample data and says how to connect LFV scripts", async ({ page }) => {
  await open(page, "/");
  const projects = await (await lfv(page).get("/2020-11-20/projects")).json();
  expect(projects.Projects).toEqual([]);

  await expect(page.getByRole("heading", { name: "Try it with sample data" })).toBeVisible();
  await expect(page.locator(".sample-card")).toHaveAttribute("open", "");
  await expect(page.locator("button[data-sample]")).toHaveCount(2);
  await expect(page.locator("button[data-sample=cookies]")).toBeVisible();

  // The connection card is open on a first visit and names this very server, with a runnable boto3 snippet.
  const card = page.locator(".connect-card");
  await expect(card).toHaveAttribute("open", "");
  await expect(card.locator(".connect-endpoint")).toHaveText(baseUrl.replace(/\/$/, ""));
  await expect(card.locator(".snippet")).toContainText(`endpoint_url="${baseUrl.replace(/\/$/, "")}"`);
  await expect(card.getByRole("link", { name: "Admin page" })).toHaveAttribute("href", "/admin");
});

test("the sample project: one click, imported and labelled, trained, and the model page shows metrics", async ({ page }) => {
  test.setTimeout(480_000);
  await open(page, "/");
  // Open on an empty server; folded away under its heading once projects exist (when this test runs again).
  if ((await page.locator(".sample-card").getAttribute("open")) === null) {
    await page.locator(".sample-card summary").click();
  }
  await page.locator("button[data-sample=cookies]").click();
  await page.waitForURL(/\/projects\/cookies-sample(-\d+)?$/);
  const name = decodeURIComponent(new URL(page.url()).pathname.split("/").pop()!);
  await hydrated(page);

  // Both datasets arrive labelled (the archives' manifests: 20 normal + 12 cracked with masks; 6 + 6 in test).
  const stats = async (type: string) => {
    const r = await lfv(page).get(`/2020-11-20/projects/${name}/datasets/${type}`);
    return (await r.json()).DatasetDescription;
  };
  await expect.poll(async () => (await stats("train")).Status, { timeout: 120_000 }).toBe("CREATE_COMPLETE");
  await expect.poll(async () => (await stats("test")).Status, { timeout: 120_000 }).toBe("CREATE_COMPLETE");
  const train = (await stats("train")).ImageStats;
  expect(train).toEqual({ Total: 32, Labeled: 32, Normal: 20, Anomaly: 12 });
  expect((await stats("test")).ImageStats).toEqual({ Total: 12, Labeled: 12, Normal: 6, Anomaly: 6 });

  // The masks came with them, each naming the defect type.
  const listed = await (await lfv(page).get(`/2020-11-20/projects/${name}/datasets/train/entries?MaxResults=100`)).json();
  const masked = listed.DatasetEntries.map((e: string) => JSON.parse(e)).filter((e: Record<string, unknown>) => e["anomaly-mask-ref"]);
  expect(masked).toHaveLength(12);
  expect(JSON.stringify(masked[0]["anomaly-mask-ref-metadata"])).toContain("cracked");

  // Train is offered on the project page (once the imports have settled), and the model trains.
  await expect(async () => {
    await page.reload();
    await hydrated(page);
    await expect(page.getByTestId("train")).toBeEnabled({ timeout: 2_000 });
  }).toPass({ timeout: 60_000 });
  await page.getByTestId("train").click();
  const row = page.locator("tr[data-version='1']");
  await expect(row).toBeVisible();
  await expect(row.locator(".badge")).toHaveText("trained", { timeout: 360_000 });
  await row.getByRole("link", { name: "Model 1" }).click();
  await expect(page.getByTestId("model-status")).toHaveText("trained");
  for (const chart of ["chart-roc-curve", "chart-precision-recall-curve", "chart-histogram"]) {
    await expect(page.getByTestId(chart)).toBeVisible();
  }
});

test("the sign-in page says how to reset a lost administrator password", async ({ browser }) => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto("/signin");
  await expect(page.locator("body")).toContainText("vigil admin reset-password admin");
  await context.close();
});
