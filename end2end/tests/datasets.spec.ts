import { expect, Page, test } from "@playwright/test";
import * as fs from "fs";
import * as path from "path";

const fixtures = path.join(__dirname, "..", "..", "server", "tests", "fixtures", "cookies");

async function open(page: Page, url: string) {
  await page.goto(url);
  // A debug WASM bundle compiles slowly on a loaded 2-core machine: allow for it.
  await expect(page.locator("body[data-hydrated=true]")).toBeAttached({ timeout: 45_000 });
}

test.beforeEach(async ({ page }) => {
  page.on("pageerror", (err) => {
    throw err;
  });
  page.on("console", (msg) => {
    if (msg.type() === "error") console.log(`browser console error: ${msg.text()}`);
  });
});

test("upload images with a progress bar, label them by keyboard, and keep the labels", async ({ page }) => {
  const name = `ds-${Date.now()}`;
  const created = await page.request.post("/2020-11-20/projects", { data: { ProjectName: name } });
  expect(created.ok()).toBeTruthy();

  await open(page, `/projects/${name}`);
  await page.getByRole("link", { name: "Add train images" }).click();
  await expect(page).toHaveURL(new RegExp(`/projects/${name}/datasets/train$`));
  await expect(page.getByRole("heading", { name: "train dataset" })).toBeVisible();

  const progress = page.waitForSelector("progress", { state: "attached" });
  const file = (name: string) => ({ name, mimeType: "image/jpeg", buffer: fs.readFileSync(path.join(fixtures, name)) });
  await page.getByLabel("Choose images to upload").setInputFiles([
    file("normal-1.jpg"),
    file("anomaly-1.jpg"),
    { name: "notes.txt", mimeType: "text/plain", buffer: Buffer.from("not an image") },
  ]);
  await progress;
  await expect(page.getByText("Added 2 images.")).toBeVisible();
  await expect(page.getByText("notes.txt: not a JPEG or PNG image")).toBeVisible();

  const tiles = page.locator(".gallery .tile");
  await expect(tiles).toHaveCount(2);
  await expect(tiles.nth(0)).toHaveAttribute("data-label", "unlabelled");

  // Keyboard labelling: N on the focused image, arrow to the next, A.
  const firstName = (await tiles.nth(0).locator(".tile-name").textContent())!;
  await page.locator(".gallery").focus();
  await page.keyboard.press("n");
  await expect(tiles.nth(0)).toHaveAttribute("data-label", "normal");
  await page.locator(".gallery").focus();
  await page.keyboard.press("ArrowRight");
  await page.keyboard.press("a");
  await expect(tiles.nth(1)).toHaveAttribute("data-label", "anomaly");

  // Kept after a reload, and visible through the LFV API.
  await page.reload();
  await expect(page.locator("body[data-hydrated=true]")).toBeAttached({ timeout: 45_000 });
  await expect(page.locator(".gallery .tile").nth(0)).toHaveAttribute("data-label", "normal");
  await expect(page.locator(".gallery .tile").nth(1)).toHaveAttribute("data-label", "anomaly");
  await page.getByLabel("Show").selectOption("anomaly");
  await expect(page.locator(".gallery .tile")).toHaveCount(1);

  const listed = await page.request.get(`/2020-11-20/projects/${name}/datasets/train/entries?anomalyClass=normal`);
  const body = await listed.json();
  expect(body.DatasetEntries).toHaveLength(1);
  const line = JSON.parse(body.DatasetEntries[0]);
  expect(line["anomaly-label-metadata"]["class-name"]).toBe("normal");
  expect(line["source-ref"]).toContain(firstName);

  // Thumbnails are served.
  const src = await page.locator(".gallery .tile img").first().getAttribute("src");
  const thumb = await page.request.get(src!);
  expect(thumb.headers()["content-type"]).toBe("image/jpeg");
});

test("paint a mask with a named label, save it, and see it in the dataset", async ({ page }) => {
  const name = `mask-${Date.now()}`;
  expect((await page.request.post("/2020-11-20/projects", { data: { ProjectName: name } })).ok()).toBeTruthy();
  await open(page, `/projects/${name}/datasets/train`);
  await page.getByLabel("Choose images to upload").setInputFiles([
    { name: "anomaly-1.jpg", mimeType: "image/jpeg", buffer: fs.readFileSync(path.join(fixtures, "anomaly-1.jpg")) },
  ]);
  await expect(page.getByText("Added 1 image.")).toBeVisible();
  await page.getByRole("link", { name: "Paint mask" }).click();
  await expect(page.locator("body[data-hydrated=true]")).toBeAttached({ timeout: 45_000 });
  await expect(page.getByRole("heading", { name: "anomaly-1.jpg" })).toBeVisible();

  // A new label, then a stroke across the canvas.
  await page.getByLabel("New label name").fill("cracked");
  await page.getByRole("button", { name: "Add" }).click();
  await expect(page.getByRole("radio", { name: "cracked" })).toBeChecked();
  const box = (await page.getByLabel("Mask canvas").boundingBox())!;
  await page.mouse.move(box.x + box.width * 0.3, box.y + box.height * 0.4);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * 0.6, box.y + box.height * 0.5, { steps: 10 });
  await page.mouse.up();
  // Undo removes the stroke: saving now is refused as empty; redo brings it back.
  await page.getByRole("button", { name: "Undo" }).click();
  await page.getByRole("button", { name: "Save mask" }).click();
  await expect(page.getByRole("alert").filter({ hasText: "The mask is empty" })).toBeVisible();
  await page.getByRole("button", { name: "Redo" }).click();
  await page.getByRole("button", { name: "Save mask" }).click();
  await expect(page.getByText("Mask saved")).toBeVisible();

  // Zoom doubles the painting surface (the stage scrolls to pan).
  await page.getByLabel(/^Zoom/).fill("2");
  await expect.poll(async () => (await page.getByLabel("Mask canvas").boundingBox())!.width).toBeGreaterThan(box.width * 1.9);

  // Back in the gallery: labelled anomaly, with a mask; the LFV line carries the mask and its colour map.
  await page.getByRole("link", { name: "Back to the images" }).click();
  await expect(page.locator(".gallery .tile").first()).toHaveAttribute("data-label", "anomaly");
  await expect(page.locator(".gallery .tile .badge.mask")).toHaveCount(1);
  const listed = await (await page.request.get(`/2020-11-20/projects/${name}/datasets/train/entries`)).json();
  const line = JSON.parse(listed.DatasetEntries[0]);
  expect(line["anomaly-label-metadata"]["class-name"]).toBe("anomaly");
  expect(line["anomaly-mask-ref"]).toMatch(/^vigil:\/\/mask\//);
  const map = line["anomaly-mask-ref-metadata"]["internal-color-map"];
  expect(map["0"]["class-name"]).toBe("BACKGROUND");
  expect(map["1"]["class-name"]).toBe("cracked");
});
