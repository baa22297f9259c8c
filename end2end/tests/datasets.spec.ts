import { expect, test } from "@playwright/test";
import { fixtures, hydrated, open, lfv } from "./helpers";
import * as fs from "fs";
import * as path from "path";

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
  const created = await lfv(page).post("/2020-11-20/projects", { ProjectName: name });
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
  await hydrated(page);
  await expect(page.locator(".gallery .tile").nth(0)).toHaveAttribute("data-label", "normal");
  await expect(page.locator(".gallery .tile").nth(1)).toHaveAttribute("data-label", "anomaly");
  await page.getByLabel("Show").selectOption("anomaly");
  await expect(page.locator(".gallery .tile")).toHaveCount(1);

  const listed = await lfv(page).get(`/2020-11-20/projects/${name}/datasets/train/entries?anomalyClass=normal`);
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
  expect((await lfv(page).post("/2020-11-20/projects", { ProjectName: name })).ok()).toBeTruthy();
  await open(page, `/projects/${name}/datasets/train`);
  await page.getByLabel("Choose images to upload").setInputFiles([
    { name: "anomaly-1.jpg", mimeType: "image/jpeg", buffer: fs.readFileSync(path.join(fixtures, "anomaly-1.jpg")) },
  ]);
  await expect(page.getByText("Added 1 image.")).toBeVisible();
  await page.getByRole("link", { name: "Paint mask" }).click();
  await hydrated(page);
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

  // A polygon in a second label: three corners, then a click on the first corner fills it.
  await page.getByLabel("New label name").fill("scratch");
  await page.getByRole("button", { name: "Add" }).click();
  await expect(page.getByRole("radio", { name: "scratch" })).toBeChecked();
  await page.getByRole("button", { name: "Polygon" }).click();
  const corners: [number, number][] = [[0.1, 0.1], [0.25, 0.1], [0.2, 0.25]];
  for (const [fx, fy] of corners) await page.mouse.click(box.x + box.width * fx, box.y + box.height * fy);
  await expect(page.getByText("3 so far")).toBeVisible();
  await page.mouse.click(box.x + box.width * 0.1, box.y + box.height * 0.1);
  await page.getByRole("button", { name: "Save mask" }).click();
  await expect(page.getByText("Mask saved")).toBeVisible();

  // An unused label can be deleted; a used one cannot.
  await page.getByLabel("New label name").fill("unused1");
  await page.getByRole("button", { name: "Add" }).click();
  await expect(page.getByRole("radio", { name: "unused1" })).toBeChecked();
  await page.getByRole("button", { name: "Delete unused1" }).click();
  await expect(page.getByRole("radio", { name: "unused1" })).toHaveCount(0);
  await page.getByRole("button", { name: "Delete cracked" }).click();
  // Refused: painted on this very canvas (the canvas says so before asking the server, which counts saved masks).
  await expect(page.getByRole("alert").filter({ hasText: /is used in 1 mask|is painted on this image/ })).toBeVisible();
  await expect(page.getByRole("radio", { name: "cracked" })).toHaveCount(1);

  // Reload: the saved mask comes back onto the canvas, in both labels' colours.
  await page.reload();
  await hydrated(page);
  await expect.poll(async () => page.getByLabel("Mask canvas").evaluate((c: HTMLCanvasElement) => {
    const d = c.getContext("2d")!.getImageData(0, 0, c.width, c.height).data;
    const colours = new Set<string>();
    for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0) colours.add(`${d[i]},${d[i + 1]},${d[i + 2]}`);
    return colours.size;
  }), { timeout: 10_000 }).toBe(2);
  await expect(page.getByRole("radio", { name: "unused1" })).toHaveCount(0);

  // Zoom doubles the painting surface; the hand tool pans it by dragging.
  await page.getByLabel(/^Zoom/).fill("2");
  await expect.poll(async () => (await page.getByLabel("Mask canvas").boundingBox())!.width).toBeGreaterThan(box.width * 1.9);
  await page.getByRole("button", { name: "Pan" }).click();
  const stage = page.locator(".stage-scroll");
  await stage.evaluate((e) => { e.scrollLeft = 0; });
  const room = await stage.evaluate((e) => e.scrollWidth - e.clientWidth);
  expect(room).toBeGreaterThan(50);
  const before = 0;
  // Drag inside the visible frame (zooming keeps its centre, so the canvas's corner is scrolled out of view).
  const b2 = (await stage.boundingBox())!;
  await page.mouse.move(b2.x + 300, b2.y + 100);
  await page.mouse.down();
  await page.mouse.move(b2.x + 100, b2.y + 100, { steps: 5 });
  await page.mouse.up();
  // Dragged 200 px to the left: the frame scrolls right by as much (or to its end).
  await expect.poll(async () => stage.evaluate((e) => e.scrollLeft)).toBeGreaterThanOrEqual(Math.min(before + 190, room));

  // Back in the gallery: labelled anomaly, with a mask; the LFV line carries the mask and its colour map.
  await page.getByRole("link", { name: "Back to the images" }).click();
  await expect(page.locator(".gallery .tile").first()).toHaveAttribute("data-label", "anomaly");
  await expect(page.locator(".gallery .tile .badge.mask")).toHaveCount(1);
  // The thumbnail shows the mask over the image, loaded from the blob store.
  const overlay = page.locator(".gallery .tile .mask-overlay");
  await expect(overlay).toHaveCount(1);
  await expect.poll(() => overlay.evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth > 0)).toBe(true);
  const listed = await (await lfv(page).get(`/2020-11-20/projects/${name}/datasets/train/entries`)).json();
  const line = JSON.parse(listed.DatasetEntries[0]);
  expect(line["anomaly-label-metadata"]["class-name"]).toBe("anomaly");
  expect(line["anomaly-mask-ref"]).toMatch(/^vigil:\/\/mask\//);
  const map = line["anomaly-mask-ref-metadata"]["internal-color-map"];
  expect(map["0"]["class-name"]).toBe("BACKGROUND");
  expect(Object.values(map).map((c: any) => c["class-name"]).sort()).toEqual(["BACKGROUND", "cracked", "scratch"]);

  // The gallery filters by anomaly type.
  await page.getByLabel("Anomaly type").selectOption("scratch");
  await expect(page.locator(".gallery .tile")).toHaveCount(1);

  // Export, then import the archive into a new project: the image comes back with its mask.
  const zip = await page.request.get(`/export/${name}/train.zip`);
  expect(zip.ok()).toBeTruthy();
  const copy = `${name}-copy`;
  expect((await lfv(page).post("/2020-11-20/projects", { ProjectName: copy })).ok()).toBeTruthy();
  await open(page, `/projects/${copy}`);
  await page.getByText("Import an archive").click();
  await page.getByLabel("Choose an archive to import").setInputFiles({ name: `${name}-train.zip`, mimeType: "application/zip", buffer: await zip.body() });
  await expect(page.getByRole("status").filter({ hasText: /Importing|Imported/ })).toBeVisible();
  await expect.poll(async () => {
    const r = await lfv(page).get(`/2020-11-20/projects/${copy}/datasets/train`);
    return (await r.json()).DatasetDescription.Status;
  }, { timeout: 30_000 }).toBe("CREATE_COMPLETE");
  await open(page, `/projects/${copy}/datasets/train`);
  await expect(page.locator(".gallery .tile .badge.mask")).toHaveCount(1);
  const copied = await (await lfv(page).get(`/2020-11-20/projects/${copy}/datasets/train/entries`)).json();
  const copiedLine = JSON.parse(copied.DatasetEntries[0]);
  expect(Object.keys(copiedLine["anomaly-mask-ref-metadata"]["internal-color-map"]).length).toBe(3);
});
