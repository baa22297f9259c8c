// Benchmark, not a test: the gallery over a few thousand images (page, filter, search, select-all times).
// Prints figures and asserts nothing about speed. Runs only with VIGIL_E2E_BENCH=1 (optionally
// VIGIL_E2E_BENCH_IMAGES=N, default 3000).
import { expect, test } from "@playwright/test";
import { lfv, open } from "./helpers";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { PNG } from "pngjs";

test.skip(process.env.VIGIL_E2E_BENCH !== "1", "benchmark: set VIGIL_E2E_BENCH=1");
test.setTimeout(900_000);

test("gallery with thousands of images: page, filter, search and select-all times", async ({ page }) => {
  const n = Number(process.env.VIGIL_E2E_BENCH_IMAGES ?? 3000);
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "vigil-bench-"));
  for (const dir of ["normal", "anomaly"]) fs.mkdirSync(path.join(root, dir));
  for (let i = 0; i < n; i++) {
    // Small, and each one different (images are stored by content).
    const png = new PNG({ width: 64, height: 64 }); // Vigil takes images of 64 px a side or more
    for (let p = 0; p < png.data.length; p += 4) {
      png.data[p] = i & 255;
      png.data[p + 1] = (i >> 8) & 255;
      png.data[p + 2] = (p / 4) & 255;
      png.data[p + 3] = 255;
    }
    const dir = i % 10 === 0 ? "anomaly" : "normal";
    fs.writeFileSync(path.join(root, dir, `${String(i).padStart(5, "0")}.png`), PNG.sync.write(png));
  }
  const name = `bench-${Date.now()}`;
  expect((await lfv(page).post("/2020-11-20/projects", { ProjectName: name })).ok()).toBeTruthy();
  await open(page, `/projects/${name}`);
  let t = Date.now();
  await page.getByText("Import from S3 or the server's disk").click();
  await page.getByLabel("Source").selectOption("folder");
  await page.getByLabel("Location").fill(root);
  await page.getByRole("button", { name: "Import", exact: true }).click();
  await expect(page.getByTestId("datasets").locator("tr").filter({ hasText: "train" })).toContainText("create complete", { timeout: 600_000 });
  const importMs = Date.now() - t;

  const figures: Record<string, number> = { images: n, import_ms: importMs };
  const time = async (label: string, action: () => Promise<void>) => {
    const t0 = Date.now();
    await action();
    figures[label] = Date.now() - t0;
  };
  const first = page.locator(".gallery .tile .tile-name").first();
  await time("open_dataset_page_ms", async () => {
    await open(page, `/projects/${name}/datasets/train`);
    await expect(page.locator(".gallery .tile")).toHaveCount(48);
  });
  const pages = Math.ceil(n / 48);
  await expect(page.getByTestId("page-of")).toHaveText(`Page 1 of ${pages}`);
  for (let k = 0; k < 3; k++) {
    const before = await first.textContent();
    await time(`next_page_${k + 1}_ms`, async () => {
      await page.getByRole("button", { name: "Next →" }).click();
      await expect(first).not.toHaveText(before!);
    });
  }
  await time("filter_anomaly_ms", async () => {
    await page.getByLabel("Show").selectOption("anomaly");
    await expect(page.getByTestId("page-of")).toHaveText(`Page 1 of ${Math.ceil(Math.ceil(n / 10) / 48)}`);
  });
  await time("sort_newest_ms", async () => {
    const before = await first.textContent();
    await page.getByLabel("Order").selectOption("newest");
    await expect(first).not.toHaveText(before!);
  });
  await time("search_ms", async () => {
    await page.getByLabel("Search by file name").fill("00010");
    await expect(page.locator(".gallery .tile")).toHaveCount(1);
  });
  await page.getByLabel("Search by file name").fill("");
  await page.getByLabel("Show").selectOption("all");
  await expect(page.getByTestId("page-of")).toHaveText(`Page 1 of ${pages}`);
  await time("select_all_ms", async () => {
    await page.locator(".gallery").focus();
    await page.keyboard.press("Control+a");
    await expect(page.getByTestId("selected-count")).toHaveText(`${n} selected`);
  });
  console.log(`gallery benchmark: ${JSON.stringify(figures)}`);
  fs.rmSync(root, { recursive: true, force: true });
});
