import { expect, Page, test } from "@playwright/test";
import { fixtures, open, lfv } from "./helpers";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

test.beforeEach(async ({ page }) => {
  page.on("pageerror", (err) => {
    throw err;
  });
});

async function status(page: Page, project: string, type: string): Promise<string> {
  const r = await lfv(page).get(`/2020-11-20/projects/${project}/datasets/${type}`);
  return r.ok() ? (await r.json()).DatasetDescription.Status : `HTTP ${r.status()}`;
}

test("import an MVTec AD category from the server's disk through the import form", async ({ page }) => {
  // An MVTec-shaped folder on the machine the server runs on (the tests run beside it).
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "vigil-mvtec-"));
  const put = (rel: string, fixture: string) => {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.copyFileSync(path.join(fixtures, fixture), path.join(root, rel));
  };
  put("train/good/000.jpg", "normal-1.jpg");
  put("train/good/001.jpg", "normal-1.jpg");
  put("test/good/000.jpg", "normal-1.jpg");
  put("test/crack/000.jpg", "anomaly-1.jpg");
  fs.writeFileSync(path.join(root, "readme.txt"), "not an image");

  const name = `mvtec-${Date.now()}`;
  expect((await lfv(page).post("/2020-11-20/projects", { ProjectName: name })).ok()).toBeTruthy();
  await open(page, `/projects/${name}`);
  await page.getByText("Import from S3 or the server's disk").click();
  await page.getByLabel("Source").selectOption("mvtec");
  await expect(page.getByLabel("Dataset", { exact: true })).toBeDisabled();
  // A relative path is refused with a message, and nothing is created.
  await page.getByLabel("Location").fill("mvtec/bottle");
  await page.getByRole("button", { name: "Import", exact: true }).click();
  await expect(page.getByRole("alert").filter({ hasText: "absolute path" })).toBeVisible();
  expect(await status(page, name, "train")).toBe("HTTP 404");

  await page.getByLabel("Location").fill(root);
  await page.getByRole("button", { name: "Import", exact: true }).click();
  await expect(page.getByText("Import started.")).toBeVisible();
  await expect.poll(() => status(page, name, "train"), { timeout: 30_000 }).toBe("CREATE_COMPLETE");
  await expect.poll(() => status(page, name, "test"), { timeout: 30_000 }).toBe("CREATE_COMPLETE");

  // The project page lists both datasets; the train dataset's report names the skipped file.
  await open(page, `/projects/${name}`);
  const rows = page.locator("table.table tbody tr");
  await expect(rows).toHaveCount(2);
  await expect(rows.filter({ hasText: "train" })).toContainText("readme.txt");
  await open(page, `/projects/${name}/datasets/test`);
  await expect(page.locator(".gallery .tile")).toHaveCount(2);
  await page.getByLabel("Show").selectOption("anomaly");
  await expect(page.locator(".gallery .tile")).toHaveCount(1);
  fs.rmSync(root, { recursive: true, force: true });
});
