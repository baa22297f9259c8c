import { expect, Page } from "@playwright/test";
import * as path from "path";

/** The cookie images and masks the Rust tests use too. */
export const fixtures = path.join(__dirname, "..", "..", "server", "tests", "fixtures", "cookies");

/** Waits for the app to mark the body as hydrated: interactions before that are lost. */
export async function hydrated(page: Page) {
  // A debug WASM bundle compiles slowly on a loaded 2-core machine: allow for it.
  await expect(page.locator("body[data-hydrated=true]")).toBeAttached({ timeout: 45_000 });
}

/** Opens a page and waits for it to hydrate. */
export async function open(page: Page, url: string) {
  await page.goto(url);
  await hydrated(page);
}
