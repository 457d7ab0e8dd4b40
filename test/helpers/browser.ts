// Real Chromium (Debian's `chromium`) driven by puppeteer-core for the demo page; screenshots go to a temporary folder.
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { requireBinaryOrSkip } from "./require-binary.js";

const CANDIDATES = [process.env.CHROMIUM_PATH, "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"];

export function chromiumPath(): string | null {
  return CANDIDATES.find((p): p is string => !!p && existsSync(p)) ?? null;
}

/** True when the browser tests should run. Missing Chromium is fatal on CI and a loud skip elsewhere. */
export function requireChromiumOrSkip(): boolean {
  return requireBinaryOrSkip("browser tests", chromiumPath() ? null : "chromium is not installed", "apt-get install chromium");
}

export const screenshots = mkdtempSync(join(tmpdir(), "agentwire-screens-"));

export function launchChromium(): Promise<Browser> {
  return puppeteer.launch({
    executablePath: chromiumPath() as string,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check"],
  });
}

/** A page in a fresh browser context (its own sessionStorage), with page errors collected. */
export async function freshPage(browser: Browser): Promise<{ page: Page; errors: string[]; close: () => Promise<void> }> {
  const context = await browser.createBrowserContext();
  const page = await context.newPage();
  const errors: string[] = [];
  page.on("pageerror", (err) => errors.push(String(err)));
  return { page, errors, close: () => context.close() };
}
