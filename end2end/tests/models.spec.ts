import { expect, test } from "@playwright/test";
import { open, lfv, hydrated } from "./helpers";
import * as fs from "fs";
import * as path from "path";
import * as os from "os";

/** The small cookie set the Rust engine tests use (normal/, anomaly/). */
const small = path.join(__dirname, "..", "..", "server", "tests", "fixtures", "cookies-small");
const file = (rel: string) => ({ name: path.basename(rel), mimeType: "image/jpeg", buffer: fs.readFileSync(path.join(small, rel)) });

test.beforeEach(async ({ page }) => {
  page.on("pageerror", (err) => {
    throw err;
  });
});

test("train from the console, follow it, read the model page, move and save the threshold, host, try an image, run a trial, verify, add to the dataset and retrain", async ({ page }) => {
  test.setTimeout(360_000);
  const name = `models-${Date.now()}`;
  expect((await lfv(page).post("/2020-11-20/projects", { ProjectName: name })).ok()).toBeTruthy();

  // Before any image, the Train button says what is missing.
  await open(page, `/projects/${name}`);
  await expect(page.getByTestId("train-missing")).toContainText("no training dataset");
  await expect(page.getByTestId("train")).toBeDisabled();

  // Upload labelled images: 8 normal and 4 anomalous into train, 4 + 4 into test.
  const upload = async (type: string, label: string, files: string[]) => {
    await open(page, `/projects/${name}/datasets/${type}`);
    await page.locator("#upload-label").selectOption(label);
    await page.getByLabel("Choose images to upload").setInputFiles(files.map(file));
    await expect(page.getByText(`Added ${files.length} images.`)).toBeVisible({ timeout: 30_000 });
  };
  const range = (prefix: string, from: number, to: number) =>
    Array.from({ length: to - from + 1 }, (_, i) => `${prefix}/${prefix}-${from + i}.jpg`);
  await upload("train", "normal", range("normal", 2, 9));
  await upload("train", "anomaly", range("anomaly", 2, 5));
  await upload("test", "normal", range("normal", 10, 13));
  await upload("test", "anomaly", range("anomaly", 6, 9));

  await open(page, `/projects/${name}`);
  await expect(page.getByTestId("train")).toBeEnabled();
  await page.locator("input[name=description]").fill("from the console");
  await page.getByTestId("train").click();
  const row = page.locator("tr[data-version='1']");
  await expect(row).toBeVisible();
  // Live: the row turns trained without a reload.
  await expect(row.locator(".badge")).toHaveText("trained", { timeout: 180_000 });
  await row.getByRole("link", { name: "Model 1" }).click();

  await expect(page.getByTestId("model-status")).toHaveText("trained");
  for (const chart of ["chart-roc-curve", "chart-precision-recall-curve", "chart-histogram"]) {
    await expect(page.getByTestId(chart)).toBeVisible();
  }
  await expect(page.getByTestId("test-results").locator(".tile")).toHaveCount(8);

  // Moving the threshold to its lowest flags every image: recall 100 %, no true negatives.
  const slider = page.getByTestId("threshold");
  const trained = await page.getByTestId("threshold-value").textContent();
  const min = await slider.getAttribute("min");
  await slider.fill(min!);
  await expect(page.getByTestId("tn")).toHaveText("0");
  await expect(page.getByTestId("fn")).toHaveText("0");
  await expect(page.getByTestId("recall")).toHaveText("100.0 %");
  await page.getByTestId("save-threshold").click();
  await expect(page.getByTestId("threshold-saved")).toHaveText("Saved.");
  await page.reload();
  await expect(page.getByTestId("threshold-value")).not.toHaveText(trained!);
  await expect(page.getByTestId("tn")).toHaveText("0");
  await page.getByTestId("restore-threshold").click();
  await expect(page.getByTestId("threshold-value")).toHaveText(trained!);

  // Host it, then try an image: verdict and heat map overlay.
  await page.getByTestId("start-model").click();
  await expect(page.getByTestId("model-status")).toHaveText("hosted", { timeout: 60_000 });
  await expect(page.getByTestId("snippet")).toContainText(`--project-name ${name}`);
  await page.getByTestId("try-file").setInputFiles(file("anomaly/anomaly-7.jpg"));
  await expect(page.getByTestId("try-verdict")).toContainText("confidence");
  await expect(page.getByTestId("try-heatmap")).toHaveAttribute("src", /^data:image\/png;base64,/);

  // The hosted model answers the LFV API too, and its detections reach the dashboard (the try above counts
  // too: every detection goes through the same inference units and counters).
  const described = await (await lfv(page).get(`/2020-11-20/projects/${name}/models/1`)).json();
  expect(described.ModelDescription.Status).toBe("HOSTED");
  for (const rel of ["anomaly/anomaly-8.jpg", "normal/normal-12.jpg", "anomaly/anomaly-9.jpg"]) {
    const r = await lfv(page).postBytes(`/2020-11-20/projects/${name}/models/1/detect`, file(rel).buffer, "image/jpeg");
    expect(r.status()).toBe(200);
    expect(typeof (await r.json()).DetectAnomalyResult.IsAnomalous).toBe("boolean");
  }
  await open(page, "/dashboard?hours=24");
  const mine = page.locator(`tr[data-project='${name}']`);
  await expect(mine.getByTestId("project-processed")).toHaveText("4");
  await expect(page.getByTestId("total-hosted")).not.toHaveText("0");
  await mine.getByRole("link", { name }).click();
  await expect(page).toHaveURL(new RegExp(`/projects/${name}$`));
  await page.goBack();

  // Trial detection over the test dataset: verify (keyboard, single, bulk), add to the training dataset, retrain.
  await open(page, `/projects/${name}/models/1`);
  await page.getByTestId("trial-name").fill("week 48");
  await page.getByTestId("trial-source").selectOption("dataset:test");
  await page.getByTestId("start-trial").click();
  await expect(page).toHaveURL(new RegExp(`/projects/${name}/trials/week%2048$`));
  await hydrated(page);
  await expect(page.getByTestId("trial-status")).toHaveText("completed", { timeout: 60_000 });
  const tiles = page.getByTestId("trial-images").locator(".tile");
  await expect(tiles).toHaveCount(8);
  await expect(tiles.first().locator("img.heat")).toBeAttached();
  // Keyboard: the first image (least confident) is focused; C marks it correct.
  await page.getByTestId("trial-images").focus();
  await page.keyboard.press("c");
  await expect(page.getByTestId("trial-notice")).toHaveText("1 marked correct.");
  await expect(page.getByTestId("trial-counts")).toContainText("1 of 8 images verified");
  // Bulk: select two more and mark them incorrect.
  await tiles.nth(1).click();
  await tiles.nth(2).click();
  await expect(page.getByTestId("trial-selected")).toHaveText("2 selected");
  await page.getByTestId("mark-incorrect").click();
  await expect(page.getByTestId("trial-counts")).toContainText("3 of 8 images verified");
  await page.getByTestId("filter-verification").selectOption("incorrect");
  await expect(tiles).toHaveCount(2);
  await page.getByTestId("filter-verification").selectOption("unverified");
  await expect(tiles).toHaveCount(5);
  await page.getByTestId("filter-verification").selectOption("");
  await page.getByTestId("add-verified").click();
  await expect(page.getByTestId("trial-notice")).toContainText("3 verified image(s) added to the training dataset. 5 unverified");
  await expect(page.getByTestId("trial-counts")).toContainText("3 added to the dataset");
  await expect(page.getByRole("link", { name: "Fix mask" })).toHaveCount(3);
  const train = await (await lfv(page).get(`/2020-11-20/projects/${name}/datasets/train`)).json();
  expect(train.DatasetDescription.ImageStats.Total).toBe(15);
  await page.getByRole("link", { name: "Fix mask" }).first().click();
  await expect(page).toHaveURL(new RegExp(`/projects/${name}/datasets/train/images/`));
  await page.goBack();
  await hydrated(page);
  await page.getByTestId("retrain").click();
  await expect(page).toHaveURL(new RegExp(`/projects/${name}/models/2$`));
  await hydrated(page);

  // A trial over uploaded images, from the model page.
  await open(page, `/projects/${name}/models/1`);
  await page.getByTestId("trial-name").fill("uploaded");
  await page.getByTestId("trial-source").selectOption("upload");
  await page.getByTestId("trial-files").setInputFiles([file("anomaly/anomaly-2.jpg"), file("normal/normal-2.jpg")]);
  await page.getByTestId("start-trial").click();
  await expect(page).toHaveURL(new RegExp(`/projects/${name}/trials/uploaded$`));
  await hydrated(page);
  await expect(page.getByTestId("trial-status")).toHaveText("completed", { timeout: 60_000 });
  await expect(page.getByTestId("trial-images").locator(".tile")).toHaveCount(2);
  page.once("dialog", (d) => d.accept());
  await page.getByTestId("delete-trial").click();
  await expect(page).toHaveURL(new RegExp(`/projects/${name}/models/1$`));
  await expect(page.getByTestId("trials")).toContainText("week 48");
  await expect(page.getByTestId("trials")).not.toContainText("uploaded");

  // A batch run from a folder on the server (under VIGIL_IMPORT_ROOT) through the hosted model, to a download.
  const folder = fs.mkdtempSync(path.join(os.tmpdir(), "vigil-batch-"));
  for (const rel of ["anomaly/anomaly-3.jpg", "normal/normal-3.jpg"]) {
    fs.copyFileSync(path.join(small, rel), path.join(folder, path.basename(rel)));
  }
  await open(page, `/projects/${name}/models/1`);
  await expect(page.getByTestId("trials")).toContainText("week 48");
  await page.getByTestId("batch-from").selectOption("folder");
  await page.getByTestId("batch-source").fill(folder);
  await page.getByTestId("batch-output").fill("download");
  await page.getByTestId("start-batch").click();
  const download = page.getByTestId("batches").getByRole("link", { name: "Download (zip)" });
  await expect(download).toBeVisible({ timeout: 60_000 });
  const zip = await page.request.get((await download.getAttribute("href"))!);
  expect(zip.status()).toBe(200);
  expect((await zip.body()).subarray(0, 2).toString()).toBe("PK");
  fs.rmSync(folder, { recursive: true, force: true });
  await page.getByTestId("stop-model").click();
  await page.getByTestId("confirm-stop-model").click();
  await expect(page.getByTestId("model-status")).toHaveText("trained", { timeout: 30_000 });
});
