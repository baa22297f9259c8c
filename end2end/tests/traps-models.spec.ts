import { Browser, expect, Locator, Page, test } from "@playwright/test";
import { open, lfv } from "./helpers";
import * as fs from "fs";
import * as path from "path";

/**
 * Issue 23, the model page: cancelling a training says what happens (trap 3), test results can be investigated
 * image by image (5), what a user comes for sits above the test results and training shows its progress (8), the
 * plots and heat maps can be read (10), stopping and deleting a model ask first (7), inputs are styled (minor).
 * One project and one trained model serve every check (training is slow here).
 */

const small = path.join(__dirname, "..", "..", "server", "tests", "fixtures", "cookies-small");
const file = (rel: string) => ({ name: path.basename(rel), mimeType: "image/jpeg", buffer: fs.readFileSync(path.join(small, rel)) });
const range = (prefix: string, from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => `${prefix}/${prefix}-${from + i}.jpg`);
const name = `traps-models-${Date.now()}`;

async function withPage<T>(browser: Browser, f: (page: Page) => Promise<T>): Promise<T> {
  const page = await browser.newPage();
  try {
    return await f(page);
  } finally {
    await page.close();
  }
}

test.beforeAll(async ({ browser }) => {
  test.setTimeout(300_000);
  await withPage(browser, async (page) => {
    expect((await lfv(page).post("/2020-11-20/projects", { ProjectName: name })).ok()).toBeTruthy();
    const upload = async (type: string, label: string, files: string[]) => {
      await open(page, `/projects/${name}/datasets/${type}`);
      await page.locator("#upload-label").selectOption(label);
      await page.getByLabel("Choose images to upload").setInputFiles(files.map(file));
      await expect(page.getByText(`Added ${files.length} images.`)).toBeVisible({ timeout: 30_000 });
    };
    await upload("train", "normal", range("normal", 2, 9));
    await upload("train", "anomaly", range("anomaly", 2, 5));
    await upload("test", "normal", range("normal", 10, 13));
    await upload("test", "anomaly", range("anomaly", 6, 9));
    await open(page, `/projects/${name}`);
    await page.getByTestId("train").click();
    await expect(page.locator("tr[data-version='1'] .badge")).toHaveText("trained", { timeout: 240_000 });
  });
});

test.beforeEach(async ({ page }) => {
  page.on("pageerror", (err) => {
    throw err;
  });
});

const box = async (l: Locator) => (await l.boundingBox())!;

/** A copy of a JPEG that hashes differently: a comment segment right after its start-of-image marker. */
function variant(buf: Buffer, tag: string): Buffer {
  const text = Buffer.from(tag);
  const head = Buffer.from([0xff, 0xfe, (text.length + 2) >> 8, (text.length + 2) & 0xff]);
  return Buffer.concat([buf.subarray(0, 2), head, text, buf.subarray(2)]);
}

test("trap 8 + 3: training shows live progress on the model page; Cancel asks, then says Stopping… at once and follows it to the end", async ({ page }) => {
  test.setTimeout(360_000);
  // A training long enough to watch and cancel: 240 distinct normal images (the small set trains in seconds).
  const slow = `${name}-slow`;
  expect((await lfv(page).post("/2020-11-20/projects", { ProjectName: slow })).ok()).toBeTruthy();
  const normals = range("normal", 2, 13).map((rel) => fs.readFileSync(path.join(small, rel)));
  const many = Array.from({ length: 240 }, (_, i) => ({ name: `normal-copy-${i}.jpg`, mimeType: "image/jpeg", buffer: variant(normals[i % normals.length], `copy ${i}`) }));
  await open(page, `/projects/${slow}/datasets/train`);
  await page.locator("#upload-label").selectOption("normal");
  await page.getByLabel("Choose images to upload").setInputFiles(many);
  await expect(page.getByText("Added 240 images.")).toBeVisible({ timeout: 120_000 });

  await open(page, `/projects/${slow}`);
  // Minor: the training form's inputs are styled like the console's others.
  await expect(page.locator("input[name=description]")).toHaveCSS("border-radius", "8px");
  await page.getByTestId("train").click();
  await expect(page.locator("tr[data-version='1']")).toBeVisible({ timeout: 30_000 });

  await open(page, `/projects/${slow}/models/1`);
  await expect(page.getByTestId("model-status")).toHaveText("training");
  // The progress is on the model page, above everything else, and it moves without a reload.
  const progress = page.locator("#training").getByTestId("training-progress");
  await expect(progress).toBeVisible();
  expect((await box(progress)).y).toBeLessThan((await box(page.locator("#hosting"))).y);
  const first = await progress.getByTestId("training-stage").textContent();
  await expect(progress.getByTestId("training-stage")).not.toHaveText(first!, { timeout: 60_000 });

  // Cancel asks first; keeping the training changes nothing.
  await page.getByTestId("cancel-training").click();
  const ask = page.getByTestId("cancel-training-confirm");
  await expect(ask).toContainText("Cancel the training of model 1?");
  await expect(ask.getByRole("button", { name: "Keep training" })).toBeFocused();
  await ask.getByRole("button", { name: "Keep training" }).click();
  await expect(page.getByTestId("model-status")).toHaveText("training");
  // Confirmed: "Stopping…" at once, with what it waits for, while the status still says training.
  await page.getByTestId("cancel-training").click();
  await page.getByTestId("confirm-cancel-training").click();
  await expect(page.getByTestId("training-stopping")).toBeVisible({ timeout: 2_000 });
  await expect(page.getByTestId("training-stopping")).toContainText("end of the step");
  // Followed until the worker has stopped it.
  await expect(page.getByTestId("model-status")).toHaveText("training failed", { timeout: 120_000 });
  await expect(page.getByTestId("model-status-message")).toHaveText("Training was cancelled.");
  await expect(page.getByTestId("training-stopping")).toHaveCount(0);

  // Trap 7: deleting the failed version asks first.
  await page.getByTestId("delete-model").click();
  await expect(page.getByTestId("delete-model-confirm")).toContainText("cannot be undone");
  await page.getByTestId("confirm-delete-model").click();
  await expect(page).toHaveURL(new RegExp(`/projects/${slow}$`));
  await expect(page.getByText("No model versions yet.")).toBeVisible();
});

test("trap 8: hosting and trying an image come before the test results, which are folded", async ({ page }) => {
  await open(page, `/projects/${name}/models/1`);
  const results = page.locator("#test-results");
  await expect(results).toBeVisible();
  const resultsY = (await box(results)).y;
  for (const id of ["#hosting", "#try", "#performance", "#packaging"]) {
    expect((await box(page.locator(id))).y, `${id} above the test results`).toBeLessThan(resultsY);
  }
  expect((await box(page.getByTestId("start-model"))).y).toBeLessThan(resultsY);
  // Folded until asked for, with the count in its summary.
  await expect(page.getByTestId("test-results-summary")).toContainText("8 images");
  await expect(page.getByTestId("result-tile").first()).toBeHidden();
  await expect(page.getByRole("navigation", { name: "On this page" }).getByRole("link", { name: "Test results" })).toBeVisible();
});

test("trap 5: a test tile shows the file name, an unsquashed thumbnail, and opens the per-image view with heat map, score and labels", async ({ page }) => {
  await open(page, `/projects/${name}/models/1`);
  await page.getByTestId("test-results-summary").click();
  const tiles = page.getByTestId("result-tile");
  await expect(tiles).toHaveCount(8);
  const names = await page.getByTestId("result-name").allTextContents();
  // The uploaded file's own name, not the hash folder it is kept under.
  for (const n of names) expect(n).toMatch(/^(normal|anomaly)-\d+\.jpg$/);
  // Thumbnails keep the image's aspect (the cookies are 192 × 256), in the file and on screen.
  const thumb = tiles.first().locator("img").first();
  await expect(thumb).toHaveCSS("object-fit", "contain");
  await expect.poll(() => thumb.evaluate((img: HTMLImageElement) => img.naturalWidth)).toBeGreaterThan(0);
  expect(await thumb.evaluate((img: HTMLImageElement) => img.naturalWidth / img.naturalHeight)).toBeCloseTo(0.75, 2);
  // Badges stay inside their tile.
  const tile = await box(tiles.first());
  for (const b of await tiles.first().locator(".badge, .mono").all()) {
    const bb = await box(b);
    expect(bb.x + bb.width).toBeLessThanOrEqual(tile.x + tile.width + 0.5);
  }

  await tiles.first().click();
  const dialog = page.getByTestId("result-dialog");
  await expect(dialog).toBeVisible();
  await expect(dialog).toBeFocused();
  await expect(page.getByTestId("result-title")).toHaveText(names[0]);
  await expect(page.getByTestId("result-position")).toHaveText("1 of 8");
  await expect(page.getByTestId("result-heatmap")).toHaveAttribute("src", /^data:image\/png;base64,/, { timeout: 60_000 });
  await expect(page.getByTestId("result-score")).toContainText("against the threshold");
  await expect(page.getByTestId("result-predicted")).toHaveText(/^(anomaly|normal)$/);
  await expect(page.getByTestId("result-true")).toHaveText(/^(anomaly|normal)$/);
  await expect(dialog.getByTestId("heat-legend")).toBeVisible();
  await expect(dialog.getByLabel("Heat map opacity")).toBeVisible();

  // Next / Previous, by button and by key; Escape closes.
  await page.keyboard.press("ArrowRight");
  await expect(page.getByTestId("result-position")).toHaveText("2 of 8");
  await expect(page.getByTestId("result-title")).toHaveText(names[1]);
  await page.getByTestId("result-next").click();
  await expect(page.getByTestId("result-position")).toHaveText("3 of 8");
  await page.getByTestId("result-prev").click();
  await expect(page.getByTestId("result-position")).toHaveText("2 of 8");
  await expect(page.getByTestId("result-heatmap")).toHaveAttribute("src", /^data:image\/png;base64,/, { timeout: 60_000 });
  await page.keyboard.press("Escape");
  await expect(dialog).toHaveCount(0);
});

test("trap 10: ROC and PR mark the threshold and follow the slider; the histogram has a count axis; axis labels clear their ticks", async ({ page }) => {
  await open(page, `/projects/${name}/models/1`);
  const roc = page.getByTestId("chart-roc-curve");
  const pr = page.getByTestId("chart-precision-recall-curve");
  // Thin evidence is said, with what would help: the model rests on 8 normal and 4 anomalous training images.
  const notes = page.getByTestId("evidence-notes");
  await expect(notes).toContainText("Trained on 8 normal images: add at least 12 more");
  await expect(notes).toContainText("chosen on only 4 labelled anomalous images");
  await expect(roc.getByTestId("threshold-marker")).toBeVisible();
  await expect(pr.getByTestId("threshold-marker")).toBeVisible();

  // At the lowest threshold every image is flagged: the ROC point is (1, 1), the PR point at recall 1.
  await page.getByTestId("threshold").fill((await page.getByTestId("threshold").getAttribute("min"))!);
  await expect(roc.getByTestId("threshold-marker")).toHaveAttribute("data-x", "1.0000");
  await expect(roc.getByTestId("threshold-marker")).toHaveAttribute("data-y", "1.0000");
  await expect(pr.getByTestId("threshold-marker")).toHaveAttribute("data-x", "1.0000");
  // At the highest nothing is: (0, 0).
  await page.getByTestId("threshold").fill((await page.getByTestId("threshold").getAttribute("max"))!);
  await expect(roc.getByTestId("threshold-marker")).toHaveAttribute("data-x", "0.0000");
  await expect(roc.getByTestId("threshold-marker")).toHaveAttribute("data-y", "0.0000");

  const counts = page.getByTestId("chart-histogram").getByTestId("histogram-count-axis").locator("text");
  expect(await counts.count()).toBeGreaterThanOrEqual(2);
  await expect(counts.first()).toHaveText("0");
  await expect(page.getByTestId("chart-histogram")).toContainText("number of images");

  // The rotated y-axis label overlaps none of the y tick labels.
  for (const chart of [roc, pr]) {
    const yLabel = await box(chart.locator("text.label").nth(1));
    for (const tick of await chart.locator("text.tick[text-anchor=end]").all()) {
      const t = await box(tick);
      expect(yLabel.x + yLabel.width, "y label left of the ticks").toBeLessThanOrEqual(t.x);
    }
  }
});

test("trap 10 + 7: the try's heat map has a colour scale; stopping a hosted model asks first", async ({ page }) => {
  test.setTimeout(180_000);
  await open(page, `/projects/${name}/models/1`);
  await page.getByTestId("start-model").click();
  await expect(page.getByTestId("model-status")).toHaveText("hosted", { timeout: 90_000 });

  await page.getByTestId("try-file").setInputFiles(file("anomaly/anomaly-7.jpg"));
  await expect(page.getByTestId("try-verdict")).toContainText("confidence", { timeout: 60_000 });
  await expect(page.locator("#try").getByTestId("heat-legend")).toBeVisible();
  await expect(page.locator("#try").getByLabel("Heat map opacity")).toBeVisible();

  await page.getByTestId("stop-model").click();
  const ask = page.getByTestId("stop-model-confirm");
  await expect(ask).toContainText("Stop hosting model 1?");
  await ask.getByRole("button", { name: "Keep it hosted" }).click();
  await expect(page.getByTestId("model-status")).toHaveText("hosted");
  await page.getByTestId("stop-model").click();
  await page.getByTestId("confirm-stop-model").click();
  await expect(page.getByTestId("model-status")).toHaveText("trained", { timeout: 60_000 });
  await expect(page.locator("#inference-units")).toHaveCSS("border-radius", "8px");
});
