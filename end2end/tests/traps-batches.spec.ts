import { expect, test, Page, Browser } from "@playwright/test";
import { baseUrl, lfv, open, sigv4Headers } from "./helpers";
import * as fs from "fs";
import * as path from "path";

// Issue 23, "the first hour of a new user": batches from the console, irreversible actions that ask first, a
// dashboard that counts the console's own detections and marks its time frame, and trial keys that work with
// the page focused. One model is trained and hosted once (through the console's server functions, so this
// spec does not depend on the dataset and model pages' layout) and shared by the checks below.

test.describe.configure({ mode: "serial" });

test.beforeEach(async ({ page }) => {
  page.on("pageerror", (err) => {
    throw err;
  });
});

const small = path.join(__dirname, "..", "..", "server", "tests", "fixtures", "cookies-small");
const image = (rel: string) => ({ name: path.basename(rel), mimeType: "image/jpeg", buffer: fs.readFileSync(path.join(small, rel)) });
const project = `batches-${Date.now()}`;

/** The console's server functions' URLs (`/api/NAME` + a hash of the build), read from the browser bundle. */
let bundle = "";
async function serverFn(page: Page, name: string): Promise<string> {
  if (!bundle) {
    const wasm = await page.request.get("/pkg/vigil.wasm");
    expect(wasm.ok()).toBeTruthy();
    bundle = (await wasm.body()).toString("latin1");
  }
  const m = bundle.match(new RegExp(`/api/${name}\\d+`));
  if (!m) throw new Error(`no server function ${name} in the bundle`);
  return m[0];
}

/** Calls a server function with URL-encoded arguments (the default encoding) and expects success. */
async function call(page: Page, name: string, form: Record<string, string>) {
  const r = await page.request.post(await serverFn(page, name), { form });
  expect(r.ok(), `${name}: ${r.status()} ${await r.text()}`).toBeTruthy();
  return r;
}

async function upload(page: Page, type: string, label: string, files: string[]) {
  const form = new FormData();
  form.append("project", project);
  form.append("dataset_type", type);
  form.append("label", label);
  for (const f of files) {
    const i = image(f);
    form.append("file", new Blob([i.buffer], { type: i.mimeType }), i.name);
  }
  const r = await page.request.post(await serverFn(page, "upload_images"), { multipart: form });
  expect(r.ok(), await r.text()).toBeTruthy();
}

async function modelStatus(page: Page): Promise<string> {
  const r = await lfv(page).get(`/2020-11-20/projects/${project}/models/1`);
  return (await r.json()).ModelDescription?.Status ?? "";
}

test.beforeAll(async ({ browser }: { browser: Browser }) => {
  test.setTimeout(420_000);
  const page = await browser.newPage({ baseURL: baseUrl });
  await open(page, "/projects");
  expect((await lfv(page).post("/2020-11-20/projects", { ProjectName: project })).ok()).toBeTruthy();
  await upload(page, "train", "normal", ["normal/normal-2.jpg", "normal/normal-3.jpg", "normal/normal-4.jpg", "normal/normal-5.jpg", "normal/normal-6.jpg", "normal/normal-7.jpg"]);
  await upload(page, "test", "normal", ["normal/normal-10.jpg", "normal/normal-11.jpg"]);
  await upload(page, "test", "anomaly", ["anomaly/anomaly-6.jpg", "anomaly/anomaly-7.jpg"]);
  await call(page, "train_model", { project, description: "batches", bucket: "", prefix: "" });
  await expect.poll(() => modelStatus(page), { timeout: 300_000, intervals: [2_000] }).toBe("TRAINED");
  await call(page, "start_model", { project, version: "1", units: "1" });
  await expect.poll(() => modelStatus(page), { timeout: 90_000, intervals: [1_000] }).toBe("HOSTED");
  await page.close();
});

test("trap 2: a batch over the test dataset or uploaded images runs from the console, and its results are shown", async ({ page }) => {
  test.setTimeout(180_000);
  await open(page, `/projects/${project}/models/1`);
  const from = page.getByTestId("batch-from");
  await expect(from).toBeVisible();

  // A source that is not one: the message names only sources a batch takes.
  await from.selectOption("folder");
  await page.getByTestId("batch-source").fill("relative/folder");
  await page.getByTestId("start-batch").click();
  const error = page.getByTestId("batch-error");
  await expect(error).toContainText("dataset:test");
  await expect(error).toContainText("s3://bucket/prefix/");
  // The REST extension takes the sources its messages name (dataset:test was refused before).
  const rest = await lfv(page).post(`/vigil/v1/projects/${project}/models/1/batches`, { Source: "dataset:test", Output: "download" });
  expect(rest.status(), await rest.text()).toBe(202);
  const upload = await lfv(page).post(`/vigil/v1/projects/${project}/models/1/batches`, { Source: "upload", Output: "download" });
  expect(upload.status()).toBe(400);
  expect(await upload.text()).toContain("dataset:test");

  // The test dataset, from the console, to completion; each image's result on the batch's page.
  await from.selectOption("dataset:test");
  await page.getByTestId("start-batch").click();
  const started = page.getByTestId("batch-started").getByRole("link");
  await expect(started).toBeVisible();
  await expect(error).toBeEmpty();
  await started.click();
  await expect(page).toHaveURL(new RegExp(`/projects/${project}/batches/batch-[0-9a-f]+$`));
  await expect(page.getByTestId("batch-status")).toHaveText("completed", { timeout: 90_000 });
  const tiles = page.getByTestId("batch-images").locator(".tile");
  await expect(tiles).toHaveCount(4);
  await expect(tiles.locator(".badge.label-anomaly, .badge.label-normal")).toHaveCount(4);
  const zip = await page.request.get((await page.getByTestId("batch-download").getAttribute("href"))!);
  expect(zip.status()).toBe(200);
  expect((await zip.body()).subarray(0, 2).toString()).toBe("PK");
  await page.getByTestId("batch-filter").selectOption("anomaly");
  const anomalous = await tiles.count();
  await page.getByTestId("batch-filter").selectOption("normal");
  await expect(tiles).toHaveCount(4 - anomalous);

  // Uploaded images, from the console.
  await open(page, `/projects/${project}/models/1`);
  await page.getByTestId("batch-from").selectOption("upload");
  await page.getByTestId("batch-files").setInputFiles([image("anomaly/anomaly-8.jpg"), image("normal/normal-12.jpg")]);
  await page.getByTestId("start-batch").click();
  await page.getByTestId("batch-started").getByRole("link").click();
  await expect(page.getByTestId("batch-status")).toHaveText("completed", { timeout: 90_000 });
  await expect(page.getByTestId("batch-images").locator(".tile")).toHaveCount(2);
  await expect(page.getByTestId("batch-images")).toContainText("anomaly-8.jpg");
});

test("trap 7: revoking a key and removing a user ask first, naming what is lost; Cancel keeps them", async ({ page }) => {
  await open(page, "/admin");
  const description = `confirm-${Date.now()}`;
  await page.locator("#key-description").fill(description);
  await page.getByRole("button", { name: "Create access key" }).click();
  const id = (await page.getByTestId("new-key-id").textContent())!.trim();
  const secret = (await page.getByTestId("new-key-secret").textContent())!.trim();
  const url = new URL("/2020-11-20/projects", baseUrl);
  const signed = () => page.request.fetch(url.toString(), { method: "GET", headers: sigv4Headers("GET", url, Buffer.alloc(0), undefined, id, secret) });

  const key = page.locator(`tr[data-key="${id}"]`);
  await key.getByRole("button", { name: "Revoke" }).click();
  const ask = key.getByTestId("confirm");
  await expect(ask).toContainText(id);
  await expect(ask).toContainText("refused");
  await expect(ask.getByRole("button", { name: "Cancel" })).toBeFocused();
  await ask.getByRole("button", { name: "Cancel" }).click();
  await expect(ask).toHaveCount(0);
  await expect(key).toBeVisible();
  expect((await signed()).status()).toBe(200);
  // Escape cancels too.
  await key.getByRole("button", { name: "Revoke" }).click();
  await page.keyboard.press("Escape");
  await expect(key.getByTestId("confirm")).toHaveCount(0);
  await key.getByRole("button", { name: "Revoke" }).click();
  await key.getByRole("button", { name: "Revoke key" }).click();
  await expect(key).toHaveCount(0);
  expect((await signed()).status()).toBe(403);

  const name = `confirm-user-${Date.now()}`;
  await page.locator("#user-name").fill(name);
  await page.locator("#user-password").fill("operator-password");
  await page.getByRole("button", { name: "Add user" }).click();
  const user = page.locator(`tr[data-user="${name}"]`);
  await expect(user).toBeVisible();
  await user.getByRole("button", { name: "Remove" }).click();
  await expect(user.getByTestId("confirm")).toContainText(`Remove ${name}?`);
  await expect(user.getByTestId("confirm")).toContainText("signed out");
  await user.getByRole("button", { name: "Cancel" }).click();
  await expect(user).toBeVisible();
  await expect(user.getByTestId("confirm")).toHaveCount(0);
  await user.getByRole("button", { name: "Remove" }).click();
  await user.getByRole("button", { name: "Remove user" }).click();
  await expect(user).toHaveCount(0);
});

test("trap 9: an image tried on the model page counts on the dashboard, and the chosen time frame is marked", async ({ page }) => {
  await open(page, "/dashboard?hours=24");
  const processed = page.locator(`tr[data-project='${project}']`).getByTestId("project-processed");
  const before = Number(await processed.textContent());
  const jpeg = fs.readFileSync(path.join(small, "anomaly/anomaly-9.jpg")).toString("base64");
  await call(page, "try_image", { project, version: "1", image: `data:image/jpeg;base64,${jpeg}` });
  await open(page, "/dashboard?hours=24");
  await expect(processed).toHaveText(String(before + 1));

  // The frame in the address is marked, by attribute and by look; choosing another moves the mark.
  const day = page.getByTestId("frame-24");
  const month = page.getByTestId("frame-720");
  await expect(day).toHaveAttribute("aria-current", "true");
  await expect(month).not.toHaveAttribute("aria-current", "true");
  const background = (l: typeof day) => l.evaluate((e) => getComputedStyle(e).backgroundColor);
  expect(await background(day)).not.toBe(await background(month));
  await month.click();
  await expect(page).toHaveURL(/hours=720/);
  await expect(month).toHaveAttribute("aria-current", "true");
  await expect(day).not.toHaveAttribute("aria-current", "true");
  expect(await background(month)).not.toBe(await background(day));
  await expect(processed).toHaveText(String(before + 1));
});

test("minor: the trial's keys work with the page focused, not while a field has the focus", async ({ page }) => {
  await open(page, "/projects");
  await call(page, "create_trial", { project, name: "keys", version: "1", source: "dataset:test" });
  await open(page, `/projects/${project}/trials/keys`);
  await expect(page.getByTestId("trial-status")).toHaveText("completed", { timeout: 90_000 });
  await expect(page.getByTestId("trial-images").locator(".tile")).toHaveCount(4);
  // Nothing focused: the key goes to the page's body.
  await page.evaluate(() => (document.activeElement as HTMLElement | null)?.blur());
  expect(await page.evaluate(() => document.activeElement === document.body)).toBe(true);
  await page.keyboard.press("c");
  await expect(page.getByTestId("trial-notice")).toHaveText("1 marked correct.");
  await expect(page.getByTestId("trial-counts")).toContainText("1 of 4 images verified");
  const first = page.getByTestId("trial-images").locator(".tile").first();
  await expect(first).toHaveAttribute("data-verdict", "correct");
  // In a list box the key belongs to the list: X there marks nothing incorrect.
  await page.getByTestId("filter-verdict").focus();
  await page.keyboard.press("x");
  await page.evaluate(() => (document.activeElement as HTMLElement | null)?.blur());
  await page.keyboard.press("ArrowRight");
  await page.keyboard.press("c");
  await expect(page.getByTestId("trial-counts")).toContainText("2 of 4 images verified");
  await expect(page.getByTestId("trial-notice")).toHaveText("1 marked correct.");
  await expect(first).toHaveAttribute("data-verdict", "correct");
  await expect(page.getByTestId("trial-images").locator(".tile[data-verdict=incorrect]")).toHaveCount(0);
});
