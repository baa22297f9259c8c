// Issue 23, the dataset side of a new user's first hour: the traps a quality engineer walked into, each
// checked against the real server. Sort by name follows the file names; a selection never outlives the
// view it was made in; an archive import is followed to its end and Train notices it; the sign-in page
// stacks its fields and says how to recover the admin password; the Train hint speaks a user's words.
import { expect, Page, test } from "@playwright/test";
import { lfv, open } from "./helpers";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";

/** The small cookie set: distinct images, so each upload gets its own hash folder. */
const small = path.join(__dirname, "..", "..", "server", "tests", "fixtures", "cookies-small");
const normals = fs.readdirSync(path.join(small, "normal")).sort().map((f) => fs.readFileSync(path.join(small, "normal", f)));

test.beforeEach(async ({ page }) => {
  page.on("pageerror", (err) => {
    throw err;
  });
});

async function newProject(page: Page, prefix: string): Promise<string> {
  const name = `${prefix}-${Date.now()}`;
  expect((await lfv(page).post("/2020-11-20/projects", { ProjectName: name })).ok()).toBeTruthy();
  return name;
}

/** Uploads files from the dataset page that is open, labelled `label` ("" for unlabelled). */
async function upload(page: Page, label: string, files: { name: string; buffer: Buffer }[]) {
  await page.locator("#upload-label").selectOption(label);
  await page.getByLabel("Choose images to upload").setInputFiles(files.map((f) => ({ ...f, mimeType: "image/jpeg" })));
  await expect(page.getByText(`Added ${files.length} images.`)).toBeVisible({ timeout: 30_000 });
}

/** Counts, in the page, the response bodies read from server functions whose URL contains `fn`. */
async function countBodies(page: Page, fn: string) {
  await page.addInitScript((fn: string) => {
    const w = window as any;
    w.__bodiesRead = 0;
    for (const m of ["text", "json", "arrayBuffer", "blob"]) {
      const orig = (Response.prototype as any)[m];
      (Response.prototype as any)[m] = function (this: Response, ...args: unknown[]) {
        const p = orig.apply(this, args);
        return this.url.includes(fn) ? p.then((v: unknown) => { w.__bodiesRead += 1; return v; }) : p;
      };
    }
  }, fn);
}

test("sort by name follows the file names shown, not the upload's hidden hash folders", async ({ page }) => {
  const name = await newProject(page, "trap-sort");
  // Names given in the reverse order of the images' hashes: ordering by the stored path
  // (vigil://upload/<hash>/<file>) gives the reverse of the names' order.
  const hash = (b: Buffer) => crypto.createHash("sha256").update(b).digest("hex");
  const byHashDesc = normals.slice(0, 6).sort((a, b) => (hash(a) < hash(b) ? 1 : -1));
  const names = ["a-01.jpg", "B-02.jpg", "c-03.jpg", "D-04.jpg", "e-05.jpg", "f-06.jpg"];
  const files = byHashDesc.map((buffer, i) => ({ name: names[i], buffer }));

  await open(page, `/projects/${name}/datasets/train`);
  await upload(page, "", files);
  const tiles = page.locator(".gallery .tile .tile-name");
  await expect(tiles).toHaveCount(6);
  await page.getByLabel("Order").selectOption("name");
  await expect(tiles).toHaveText(names);
});

test("a selection never outlives its view: labelling it out of the filter, or a filter change racing select-all", async ({ page }) => {
  const name = await newProject(page, "trap-select");
  await countBodies(page, "list_entry_ids");
  await open(page, `/projects/${name}/datasets/train`);
  await upload(page, "", normals.slice(0, 3).map((buffer, i) => ({ name: `part-${i}.jpg`, buffer })));
  const tiles = page.locator(".gallery .tile");
  const count = page.getByTestId("selected-count");
  const bulk = ["Normal (N)", "Anomaly (A)", "Unlabel (U)", "Move to test", "Delete (Del)"].map((b) => page.getByRole("button", { name: b }));

  // Unlabelled only, select all, label them normal: they leave the view, and the selection with them.
  await page.getByLabel("Show").selectOption("unlabeled");
  await expect(tiles).toHaveCount(3);
  await page.locator(".gallery").focus();
  await page.keyboard.press("Control+a");
  await expect(count).toHaveText("3 selected");
  await page.keyboard.press("n");
  await expect(page.getByText("Labelled 3 images normal.")).toBeVisible();
  await expect(page.getByText("No image matches.")).toBeVisible();
  await expect(count).toHaveText("Nothing selected");
  for (const b of bulk) await expect(b).toBeDisabled();

  // Back to every image; select all, but change the filter before the server's answer arrives: the late
  // answer must not select images the new filter hides.
  await page.getByLabel("Show").selectOption("all");
  await expect(tiles).toHaveCount(3);
  let release: () => void = () => {};
  const held = new Promise<void>((r) => (release = r));
  let asked: () => void = () => {};
  const arrived = new Promise<void>((r) => (asked = r));
  await page.route("**/api/list_entry_ids*", async (route) => {
    asked();
    await held;
    await route.continue();
  });
  const before = await page.evaluate(() => (window as any).__bodiesRead as number);
  await page.locator(".gallery").focus();
  await page.keyboard.press("Control+a");
  await arrived;
  await page.getByLabel("Show").selectOption("anomaly");
  await expect(page.getByText("No image matches.")).toBeVisible();
  release();
  // The answer has been read by the page (and whatever it does with it done, before the next frame).
  await page.waitForFunction((n) => (window as any).__bodiesRead > n, before);
  await expect(count).toHaveText("Nothing selected");
  await expect(page.getByText(/Selected all/)).toHaveCount(0);
  for (const b of bulk) await expect(b).toBeDisabled();
  await page.unroute("**/api/list_entry_ids*");

  // Every image is still there and still normal: nothing acted on hidden images.
  await page.getByLabel("Show").selectOption("normal");
  await expect(tiles).toHaveCount(3);
});

test("an archive import is followed to its end, clears an older error, and Train notices it without a reload", async ({ page }) => {
  // A source project with enough normal images to train on, exported as an archive.
  const source = await newProject(page, "trap-src");
  await open(page, `/projects/${source}/datasets/train`);
  await upload(page, "normal", normals.slice(0, 6).map((buffer, i) => ({ name: `n-${i}.jpg`, buffer })));
  const zip = await page.request.get(`/export/${source}/train.zip`);
  expect(zip.ok()).toBeTruthy();

  const name = await newProject(page, "trap-import");
  await open(page, `/projects/${name}`);
  // The Train hint says what to do in a user's words.
  const missing = page.getByTestId("train-missing");
  await expect(missing).toContainText("Add images to a training dataset first");
  await expect(missing).not.toContainText("CreateDataset");
  await expect(page.getByTestId("train")).toBeDisabled();

  // An S3 import refused first: its error shows ...
  await page.getByText("Import from S3 or the server's disk").click();
  await page.getByLabel("Location").fill("not-a-uri");
  await page.getByRole("button", { name: "Import", exact: true }).click();
  const oldError = page.getByRole("alert").filter({ hasText: "is not an s3://bucket/key URI" });
  await expect(oldError).toBeVisible();

  // ... and goes when the archive import starts; the import is followed to its end.
  await page.getByText("Import an archive").click();
  await page.getByLabel("Choose an archive to import").setInputFiles({ name: "cookies.zip", mimeType: "application/zip", buffer: await zip.body() });
  await expect(oldError).toHaveCount(0);
  const progress = page.getByTestId("import-progress");
  await expect(progress).toHaveText("Imported cookies.zip: 6 images in the train dataset.", { timeout: 30_000 });
  await expect(page.getByRole("status").filter({ hasText: "Importing" })).toHaveCount(0);
  await expect(page.getByTestId("datasets").locator("tbody tr")).toContainText("create complete");
  // Train follows without a reload.
  await expect(page.getByTestId("train")).toBeEnabled();
  await expect(page.getByTestId("train-missing")).toHaveCount(0);

  // A refused archive (the train dataset exists now) says why, in place of the finished import's line.
  await page.getByLabel("Choose an archive to import").setInputFiles({ name: "again.zip", mimeType: "application/zip", buffer: await zip.body() });
  await expect(page.getByRole("alert").filter({ hasText: "already has a train dataset" })).toBeVisible();
  await expect(progress).toHaveCount(0);
});

test("sign-in stacks its fields, label above input, and says how to recover the admin password", async ({ page }) => {
  await page.goto("/signin");
  const form = page.locator("form.signin-form");
  const box = async (sel: string) => (await page.locator(sel).boundingBox())!;
  const [nameLabel, name, pwLabel, pw, formBox] = [
    await box("label[for=signin-name]"),
    await box("#signin-name"),
    await box("label[for=signin-password]"),
    await box("#signin-password"),
    (await form.boundingBox())!,
  ];
  // Each label above its input, the password row below the name row.
  expect(nameLabel.y + nameLabel.height).toBeLessThanOrEqual(name.y);
  expect(name.y + name.height).toBeLessThanOrEqual(pwLabel.y);
  expect(pwLabel.y + pwLabel.height).toBeLessThanOrEqual(pw.y);
  // Full width of the form's content, both the same width.
  expect(name.width).toBeGreaterThan(formBox.width * 0.8);
  expect(Math.abs(name.width - pw.width)).toBeLessThan(1);
  await expect(page.getByTestId("lost-password")).toHaveText(
    "Lost the administrator password? On the server, run vigil admin reset-password admin.",
  );
});
