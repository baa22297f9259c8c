// Issue 11: labelling and dataset console, second round — no silent corruption, no dead ends, built for
// thousands of images.
import { expect, Page, test } from "@playwright/test";
import { fixtures, hydrated, lfv, open } from "./helpers";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { PNG } from "pngjs";

test.beforeEach(async ({ page }) => {
  page.on("pageerror", (err) => {
    throw err;
  });
  page.on("console", (msg) => {
    if (msg.type() === "error") console.log(`browser console error: ${msg.text()}`);
  });
});

const jpeg = (file: string, as = file) => ({ name: as, mimeType: "image/jpeg", buffer: fs.readFileSync(path.join(fixtures, file)) });

async function newProject(page: Page, prefix: string): Promise<string> {
  const name = `${prefix}-${Date.now()}`;
  expect((await lfv(page).post("/2020-11-20/projects", { ProjectName: name })).ok()).toBeTruthy();
  return name;
}

async function datasetStatus(page: Page, project: string, type: string): Promise<string> {
  const r = await lfv(page).get(`/2020-11-20/projects/${project}/datasets/${type}`);
  return r.ok() ? (await r.json()).DatasetDescription.Status : `HTTP ${r.status()}`;
}

/** The canvas's opaque pixels by colour (`#RRGGBB`), and how many are neither transparent nor opaque. */
async function canvasColours(page: Page): Promise<{ colours: Record<string, number>; soft: number }> {
  return page.getByLabel("Mask canvas").evaluate((c: HTMLCanvasElement) => {
    const d = c.getContext("2d")!.getImageData(0, 0, c.width, c.height).data;
    const colours: Record<string, number> = {};
    let soft = 0;
    const hex = (v: number) => v.toString(16).padStart(2, "0").toUpperCase();
    for (let i = 0; i < d.length; i += 4) {
      if (d[i + 3] === 0) continue;
      if (d[i + 3] !== 255) soft++;
      const k = `#${hex(d[i])}${hex(d[i + 1])}${hex(d[i + 2])}`;
      colours[k] = (colours[k] ?? 0) + 1;
    }
    return { colours, soft };
  });
}

/** Pixels per colour of a PNG. */
function pngColours(bytes: Buffer): Record<string, number> {
  const png = PNG.sync.read(bytes);
  const out: Record<string, number> = {};
  const hex = (v: number) => v.toString(16).padStart(2, "0").toUpperCase();
  for (let i = 0; i < png.data.length; i += 4) {
    const k = `#${hex(png.data[i])}${hex(png.data[i + 1])}${hex(png.data[i + 2])}`;
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}

async function drag(page: Page, from: [number, number], to: [number, number]) {
  const box = (await page.getByLabel("Mask canvas").boundingBox())!;
  await page.mouse.move(box.x + box.width * from[0], box.y + box.height * from[1]);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * to[0], box.y + box.height * to[1], { steps: 12 });
  await page.mouse.up();
}

async function addLabel(page: Page, name: string) {
  await page.getByLabel("New label name").fill(name);
  await page.getByRole("button", { name: "Add", exact: true }).click();
  await expect(page.getByRole("radio", { name })).toBeChecked();
}

/** A project with one uploaded image, opened on the canvas. */
async function canvasFor(page: Page, prefix: string): Promise<string> {
  const name = await newProject(page, prefix);
  await open(page, `/projects/${name}/datasets/train`);
  await page.getByLabel("Choose images to upload").setInputFiles([jpeg("anomaly-1.jpg")]);
  await expect(page.getByText("Added 1 image.")).toBeVisible();
  await page.getByRole("link", { name: "Paint mask" }).click();
  await hydrated(page);
  await expect(page.getByRole("heading", { name: "anomaly-1.jpg" })).toBeVisible();
  return name;
}

test("recolouring a label maps every pixel, and the saved mask holds exact label colours only", async ({ page, context }) => {
  const name = await canvasFor(page, "recolour");
  // No phantom label before the project has one.
  await expect(page.getByRole("radio")).toHaveCount(0);
  await addLabel(page, "dent");
  await addLabel(page, "scratch");
  await page.getByRole("radio", { name: "dent" }).check();
  await drag(page, [0.2, 0.3], [0.7, 0.6]);
  await drag(page, [0.25, 0.7], [0.6, 0.2]);

  // Painting never anti-aliases: every painted pixel is opaque and exactly dent's colour.
  const painted = await canvasColours(page);
  expect(painted.soft).toBe(0);
  expect(Object.keys(painted.colours)).toEqual(["#E4572E"]);
  const n = painted.colours["#E4572E"];
  expect(n).toBeGreaterThan(100);

  // Recolour dent: every one of its pixels follows, none keeps the old colour.
  await page.getByLabel("Colour of dent").fill("#1f77b4");
  await expect(page.getByText("dent is now #1F77B4.")).toBeVisible();
  const recoloured = await canvasColours(page);
  expect(recoloured).toEqual({ colours: { "#1F77B4": n }, soft: 0 });

  await page.getByRole("button", { name: "Save mask" }).click();
  await expect(page.getByText("Mask saved")).toBeVisible();

  // Through ListDatasetEntries: the colour map names dent only, in its new colour…
  const listed = await (await lfv(page).get(`/2020-11-20/projects/${name}/datasets/train/entries`)).json();
  const line = JSON.parse(listed.DatasetEntries[0]);
  const map = line["anomaly-mask-ref-metadata"]["internal-color-map"];
  const named = Object.values(map).map((c: any) => `${c["class-name"]} ${String(c["hex-color"]).toUpperCase()}`).sort();
  expect(named).toEqual(["BACKGROUND #FFFFFF", "dent #1F77B4"]);
  // …and the mask blob holds white and dent's colour only, with every painted pixel.
  await page.reload();
  await hydrated(page);
  const src = await page.getByTestId("saved-mask").getAttribute("src");
  const blob = await page.request.get(src!);
  expect(blob.ok()).toBeTruthy();
  const colours = pngColours(await blob.body());
  expect(Object.keys(colours).sort()).toEqual(["#1F77B4", "#FFFFFF"]);
  expect(colours["#1F77B4"]).toBe(n);
  // The canvas reads it back as it was saved.
  await expect.poll(async () => (await canvasColours(page)).colours["#1F77B4"]).toBe(n);

  // A colour the project no longer gives the label (recoloured in another tab) is refused, not guessed.
  const other = await context.newPage();
  await open(other, page.url());
  await other.getByLabel("Colour of dent").fill("#9b5de5");
  await expect(other.getByText("dent is now #9B5DE5.")).toBeVisible();
  await other.close();
  await drag(page, [0.1, 0.1], [0.15, 0.15]);
  await page.getByRole("button", { name: "Save mask" }).click();
  await expect(page.getByRole("alert").filter({ hasText: "reload the page" })).toBeVisible();
  // A colour another label has is refused too.
  await page.getByLabel("Colour of scratch").fill("#1f77b4");
  await expect(page.getByRole("alert").filter({ hasText: "already has the colour" })).toBeVisible();
});

test("canvas: labels, rename dialog, duplicate names, fit, zoom at the pointer, unsaved edits", async ({ page }) => {
  await canvasFor(page, "canvas");
  await addLabel(page, "dent");
  // A duplicate label says so.
  await page.getByLabel("New label name").fill("Dent");
  await page.getByRole("button", { name: "Add", exact: true }).click();
  await expect(page.getByRole("alert").filter({ hasText: "already a label named dent" })).toBeVisible();
  // Rename in a dialog, not a browser prompt.
  page.once("dialog", () => {
    throw new Error("a browser dialog opened for renaming");
  });
  await page.getByRole("button", { name: "Rename dent" }).click();
  const dialog = page.getByRole("dialog", { name: "Rename label" });
  await dialog.getByLabel("New name").fill("dented");
  await dialog.getByRole("button", { name: "Rename" }).click();
  await expect(dialog).toHaveCount(0);
  await expect(page.getByRole("radio", { name: "dented" })).toBeChecked();
  page.removeAllListeners("dialog");

  // The image fits the viewport at start.
  const viewport = page.viewportSize()!;
  const fitted = (await page.getByLabel("Mask canvas").boundingBox())!;
  expect(fitted.y + fitted.height).toBeLessThanOrEqual(viewport.height + 1);

  // Ctrl + wheel zooms, keeping the point under the pointer where it is (once the image is larger than its
  // frame: a smaller image is centred in it, and there is nothing to scroll yet).
  await page.getByLabel(/^Zoom/).fill("3");
  await expect.poll(async () => (await page.getByLabel("Mask canvas").boundingBox())!.width).toBeGreaterThan(fitted.width * 2.9);
  const frame = (await page.locator(".stage-scroll").boundingBox())!;
  const px = frame.x + frame.width * 0.6, py = frame.y + frame.height * 0.55;
  const at = async () => {
    const b = (await page.getByLabel("Mask canvas").boundingBox())!;
    return [(px - b.x) / b.width, (py - b.y) / b.height];
  };
  const zoomed = (await page.getByLabel("Mask canvas").boundingBox())!;
  const [fx, fy] = await at();
  await page.mouse.move(px, py);
  await page.keyboard.down("Control");
  await page.mouse.wheel(0, -100);
  await page.mouse.wheel(0, -100);
  await page.keyboard.up("Control");
  await expect.poll(async () => (await page.getByLabel("Mask canvas").boundingBox())!.width).toBeGreaterThan(zoomed.width * 1.4);
  const [gx, gy] = await at();
  expect(Math.abs(gx - fx)).toBeLessThan(0.02);
  expect(Math.abs(gy - fy)).toBeLessThan(0.02);

  // Unsaved edits: leaving through a link asks first (and stays when refused).
  await page.getByLabel(/^Zoom/).fill("1");
  await drag(page, [0.3, 0.3], [0.5, 0.5]);
  await expect(page.getByTestId("unsaved")).toBeVisible();
  const url = page.url();
  const asked: string[] = [];
  page.once("dialog", (d) => {
    asked.push(`${d.type()}: ${d.message()}`);
    d.dismiss();
  });
  await page.getByRole("link", { name: "Back to the images" }).click();
  await expect.poll(() => asked.length).toBe(1);
  expect(asked[0]).toContain("unsaved changes");
  expect(page.url()).toBe(url);
  await expect(page.getByTestId("unsaved")).toBeVisible();
  // Closing the tab asks too.
  const beforeUnload = page.waitForEvent("dialog");
  await page.close({ runBeforeUnload: true });
  const d = await beforeUnload;
  expect(d.type()).toBe("beforeunload");
  await d.accept();
});

test("gallery keys: Ctrl+A selects the filter and labels nothing, Delete confirms, shift-click ranges, bulk actions say what they did", async ({ page }) => {
  const name = await newProject(page, "keys");
  await open(page, `/projects/${name}/datasets/train`);
  await page.getByLabel("Choose images to upload").setInputFiles([
    jpeg("normal-1.jpg", "a.jpg"),
    jpeg("normal-1.jpg", "b.jpg"),
    jpeg("anomaly-1.jpg", "c.jpg"),
    jpeg("anomaly-1.jpg", "d.jpg"),
  ]);
  await expect(page.getByText("Added 4 images.")).toBeVisible();
  const tiles = page.locator(".gallery .tile");
  await expect(tiles).toHaveCount(4);
  await page.locator(".gallery").focus();
  await page.keyboard.press("Control+a");
  await expect(page.getByTestId("selected-count")).toHaveText("4 selected");
  await expect(page.locator('.gallery .tile[data-label="anomaly"]')).toHaveCount(0);
  await page.keyboard.press("Escape");
  await expect(page.getByTestId("selected-count")).toHaveText("Nothing selected");

  // The Delete key asks, like the button; refusing keeps the image.
  let asked = 0;
  page.once("dialog", (d) => {
    asked++;
    d.dismiss();
  });
  await page.keyboard.press("Delete");
  await expect.poll(() => asked).toBe(1);
  await expect(tiles).toHaveCount(4);
  page.once("dialog", (d) => d.accept());
  await page.keyboard.press("Delete");
  await expect(page.getByRole("status").filter({ hasText: "Deleted 1 image." })).toBeVisible();
  await expect(tiles).toHaveCount(3);

  // Shift-click selects a range; the bulk action says what it did.
  await tiles.nth(0).click();
  await tiles.nth(2).click({ modifiers: ["Shift"] });
  await expect(page.getByTestId("selected-count")).toHaveText("3 selected");
  await page.getByRole("button", { name: "Normal (N)" }).click();
  await expect(page.getByRole("status").filter({ hasText: "Labelled 3 images normal." })).toBeVisible();
  await tiles.nth(1).click();
  await expect(page.getByTestId("selected-count")).toHaveText("2 selected");
  await page.getByRole("button", { name: "Move to test" }).click();
  await expect(page.getByRole("status").filter({ hasText: "Moved 2 images to test." })).toBeVisible();
  await expect(tiles).toHaveCount(1);
});

/** A folder on the server's disk (VIGIL_IMPORT_ROOT covers the temporary folder in the tests). */
function folder(files: Record<string, string>): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "vigil-folder-"));
  for (const [rel, fixture] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.copyFileSync(path.join(fixtures, fixture), path.join(root, rel));
  }
  return root;
}

async function importFolder(page: Page, location: string, type = "train") {
  await page.getByText("Import from S3 or the server's disk").click();
  await page.getByLabel("Source").selectOption("folder");
  await page.getByLabel("Dataset", { exact: true }).selectOption(type);
  await page.getByLabel("Location").fill(location);
  await page.getByRole("button", { name: "Import", exact: true }).click();
}

test("no dead ends: a missing source is refused up front; a failed import can be retried or deleted, and so can its project", async ({ page }) => {
  const name = await newProject(page, "deadends");
  await open(page, `/projects/${name}`);

  // An unreachable bucket: refused with the reason, nothing created.
  await page.getByText("Import from S3 or the server's disk").click();
  await page.getByLabel("Location").fill("s3://vigil-no-such-bucket/train.manifest");
  await page.getByText("S3 connection for this import").click();
  await page.getByLabel("Endpoint").fill("http://127.0.0.1:9");
  await page.getByLabel("Access key id").fill("x");
  await page.getByLabel("Secret access key").fill("y");
  await page.getByRole("button", { name: "Import", exact: true }).click();
  await expect(page.getByRole("alert").filter({ hasText: "The import was not started" })).toBeVisible({ timeout: 40_000 });
  await expect(page.getByText("Import started.")).toHaveCount(0);
  expect(await datasetStatus(page, name, "train")).toBe("HTTP 404");

  // An empty folder fails after it started: the table follows it to create failed without a reload.
  const root = folder({});
  await open(page, `/projects/${name}`);
  await importFolder(page, root);
  await expect(page.getByText("Import started.")).toBeVisible();
  const train = page.getByTestId("datasets").locator("tr").filter({ hasText: "train" });
  await expect(train).toContainText("create failed", { timeout: 30_000 });

  // Retry after fixing the source: the same import runs again and completes, live.
  fs.mkdirSync(path.join(root, "normal"));
  fs.copyFileSync(path.join(fixtures, "normal-1.jpg"), path.join(root, "normal", "1.jpg"));
  await train.getByRole("link", { name: "train" }).click();
  await hydrated(page);
  await page.getByRole("button", { name: "Retry import" }).click();
  await expect(page.locator(".stat").filter({ hasText: "images" })).toContainText("1", { timeout: 30_000 });
  await expect(page.locator(".badge.good")).toContainText("create complete");

  // A failed dataset can be deleted (with confirmation); the project too, whatever its datasets' state.
  await open(page, `/projects/${name}`);
  await importFolder(page, folder({}), "test");
  const test_ = page.getByTestId("datasets").locator("tr").filter({ hasText: "test" });
  await expect(test_).toContainText("create failed", { timeout: 30_000 });
  await open(page, `/projects/${name}/datasets/test`);
  page.once("dialog", (d) => d.accept());
  await page.getByRole("button", { name: "Delete dataset…" }).click();
  await expect(page).toHaveURL(new RegExp(`/projects/${name}$`));
  expect(await datasetStatus(page, name, "test")).toBe("HTTP 404");
  await importFolder(page, folder({}), "test");
  await expect(page.getByTestId("datasets").locator("tr").filter({ hasText: "test" })).toContainText("create failed", { timeout: 30_000 });
  await page.getByRole("button", { name: "Delete project…" }).click();
  await page.getByRole("button", { name: "Delete permanently" }).click();
  await expect(page).toHaveURL(/\/projects$/);
  expect((await lfv(page).get(`/2020-11-20/projects/${name}`)).status()).toBe(404);
  fs.rmSync(root, { recursive: true, force: true });
});

test("gallery: names with their folder, search, order, page N of M, previous / next on the canvas inside the filter", async ({ page }) => {
  const files: Record<string, string> = { "normal/22.jpg": "normal-1.jpg", "anomaly/22.jpg": "anomaly-1.jpg" };
  for (let i = 0; i < 50; i++) files[`normal/n${String(i).padStart(2, "0")}.jpg`] = "normal-1.jpg";
  const root = folder(files);
  const name = await newProject(page, "gallery");
  await open(page, `/projects/${name}`);
  await importFolder(page, root);
  await expect(page.getByTestId("datasets").locator("tr").filter({ hasText: "train" })).toContainText("create complete", { timeout: 60_000 });
  await open(page, `/projects/${name}/datasets/train`);
  await expect(page.getByTestId("page-of")).toHaveText("Page 1 of 2");
  await page.getByLabel("Search by file name").fill("/22.jpg");
  const names = page.locator(".gallery .tile .tile-name");
  await expect(names).toHaveCount(2);
  await page.getByLabel("Order").selectOption("name");
  await expect(names).toHaveText(["anomaly/22.jpg", "normal/22.jpg"]);
  await expect(page.getByTestId("page-of")).toHaveText("Page 1 of 1");

  // Previous / next on the canvas stay inside the search and order.
  await page.locator(".gallery .tile").nth(0).getByRole("link", { name: "Paint mask" }).click();
  await hydrated(page);
  await expect(page.getByTestId("image-position")).toHaveText("Image 1 of 2");
  await expect(page.getByRole("heading", { level: 1 })).toHaveText("anomaly/22.jpg");
  await page.locator(".mask-layout").focus();
  await page.keyboard.press("ArrowRight");
  await expect(page.getByRole("heading", { level: 1 })).toHaveText("normal/22.jpg");
  await expect(page.getByTestId("image-position")).toHaveText("Image 2 of 2");
  await page.getByRole("link", { name: "← Previous" }).click();
  await expect(page.getByRole("heading", { level: 1 })).toHaveText("anomaly/22.jpg");
  fs.rmSync(root, { recursive: true, force: true });
});
