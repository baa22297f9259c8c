import { expect, test } from "@playwright/test";
import { baseUrl, hydrated, lfv, open } from "./helpers";

// "Package for edge" on the model page. The end-to-end server has no S3 endpoint, so no packaging job can
// succeed here (the integration test packaging_from_the_console covers the job, the list and the ZIP download);
// this checks the form against the real server: disabled with its reason for a version that is not trained,
// the server's refusals shown next to it for a trained one, and the download route's answers.
//
// A trained model takes minutes to make, so this reuses the one models.spec.ts trains (the specs run in file
// order in one worker, against one server): a project with a TRAINED or HOSTED version. Run alone, it skips.

test.beforeEach(async ({ page }) => {
  page.on("pageerror", (err) => {
    throw err;
  });
});

/** A project and version, from an earlier spec, whose model is trained (or hosted). */
async function trainedModel(page: import("@playwright/test").Page): Promise<{ project: string; version: string } | null> {
  const projects = await (await lfv(page).get("/2020-11-20/projects")).json();
  for (const p of projects.Projects ?? []) {
    const name: string = p.ProjectName;
    if (!name.startsWith("models-")) continue;
    const models = await (await lfv(page).get(`/2020-11-20/projects/${name}/models`)).json();
    const trained = (models.Models ?? []).find((m: { Status: string }) => m.Status === "TRAINED" || m.Status === "HOSTED");
    if (trained) return { project: name, version: trained.ModelVersion };
  }
  return null;
}

test("package for edge: disabled with its reason until trained, the server's refusals shown, the download route", async ({ page, playwright }) => {
  test.setTimeout(180_000);
  const found = await trainedModel(page);
  test.skip(!found, "no trained model from models.spec.ts on this server (run the whole suite)");
  const { project, version } = found!;

  // A version that is not trained: train one more and cancel it; its form is disabled and says why.
  await open(page, `/projects/${project}`);
  const before = await (await lfv(page).get(`/2020-11-20/projects/${project}/models`)).json();
  const highest = Math.max(...before.Models.map((m: { ModelVersion: string }) => Number(m.ModelVersion)));
  await expect(page.getByTestId("train")).toBeEnabled();
  await page.getByTestId("train").click();
  const fresh = highest + 1;
  const row = page.locator(`tr[data-version='${fresh}']`);
  await expect(row).toBeVisible({ timeout: 30_000 });
  // Cancelled at once: the version never trains (its status is TRAINING until the worker stops, then failed).
  await row.getByRole("button", { name: "Cancel" }).click();
  await row.getByTestId("confirm-cancel-training").click();
  await open(page, `/projects/${project}/models/${fresh}`);
  const card = page.getByTestId("packaging-card");
  await expect(card.getByRole("heading", { name: "Package for edge" })).toBeVisible();
  await expect(page.getByTestId("package-disabled")).toContainText(/training/i);
  await expect(page.getByTestId("start-packaging")).toBeDisabled();
  await expect(page.getByTestId("package-component-name")).toBeDisabled();

  // The trained version: the form is enabled with LFV console's fields, and the server's checks are shown.
  await open(page, `/projects/${project}/models/${version}`);
  await expect(page.getByTestId("package-disabled")).toHaveCount(0);
  await expect(page.getByTestId("start-packaging")).toBeEnabled();
  await expect(page.getByTestId("package-component-version")).toHaveAttribute("placeholder", `${version}.0.0`);
  await expect(page.getByTestId("packaging-empty")).toBeVisible();

  // No component name: the server says what is missing.
  await page.getByTestId("package-bucket").fill("vigil-e2e-packages");
  await page.getByTestId("start-packaging").click();
  await expect(page.getByTestId("package-error")).toContainText("name");

  // NVIDIA without its compiler options.
  await page.getByTestId("package-component-name").fill("com.example.cookies");
  await page.getByTestId("package-target").selectOption("ARM64");
  await page.getByTestId("package-accelerator").selectOption("NVIDIA");
  await expect(page.getByTestId("package-compiler-options")).toHaveAttribute("placeholder", /gpu-code/);
  await page.getByTestId("start-packaging").click();
  await expect(page.getByTestId("package-error")).toContainText("gpu-code");

  // The device takes no compiler options (the field goes away), and a bad component version is refused.
  await page.getByTestId("package-target").selectOption("jetson_xavier");
  await expect(page.getByTestId("package-compiler-options")).toHaveCount(0);
  await page.getByTestId("package-component-version").fill("1.0");
  await page.getByTestId("start-packaging").click();
  await expect(page.getByTestId("package-error")).toContainText("ComponentVersion");
  await expect(page.getByTestId("packaging-empty")).toBeVisible();

  // The download route: a job that does not exist is a 404; without a session, no package.
  const missing = await page.request.get(`/packages/${project}/no-such-job.zip`, { maxRedirects: 0 });
  expect(missing.status()).toBe(404);
  const anon = await playwright.request.newContext({ baseURL: baseUrl });
  const refused = await anon.get(`/packages/${project}/no-such-job.zip`, { maxRedirects: 0 });
  expect([401, 303]).toContain(refused.status());
  await anon.dispose();
  await hydrated(page);
});
