// The demo page in real Chromium, on @agentwire/client: a streamed turn with its exact text, stop, the drop button,
// a reload that resumes, a message typed while the network is down delivered once, "session gone" after a
// standalone restart, and the SSE fallback when WebSocket upgrades are refused. Assertions read the DOM.
import { join } from "node:path";
import type { Browser, Page } from "puppeteer-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { planDemo } from "../../src/agents/demo.js";
import { RecordingDemoAgent } from "../helpers/agents.js";
import { freshPage, launchChromium, requireChromiumOrSkip, screenshots } from "../helpers/browser.js";
import { type TestServer, startTestServer } from "../helpers/server.js";
import { TcpProxy } from "../../bench/tcp-proxy.js";

const run = requireChromiumOrSkip();
const WORDS = 12;

/** The text the demo answers `input` with (its calculator result in words), as the page shows it. */
function script(input: string, value: number): string {
  const plan = planDemo(input, 1, WORDS);
  return [...plan.intro, ...plan.reply(JSON.stringify({ value }), false)].join("");
}

const statusOf = (page: Page) => page.$eval("#status", (e) => (e as HTMLElement).dataset.state ?? "");
const waitStatus = (page: Page, states: string[]) =>
  page.waitForFunction((s: string[]) => s.includes(document.getElementById("status")?.dataset.state ?? ""), { timeout: 10_000 }, states);
const turnText = (page: Page, n: number) =>
  page.$$eval(".turn", (turns, i) => [...(turns[i as number]?.querySelectorAll(".bot .text") ?? [])].map((e) => e.textContent).join(""), n);
const waitTurn = (page: Page, n: number, status: string) =>
  page.waitForFunction((i: number, s: string) => document.querySelectorAll(".turn")[i]?.getAttribute("data-status") === s, { timeout: 15_000 }, n, status);

async function ask(page: Page, text: string): Promise<void> {
  await page.type("#text", text);
  await page.keyboard.press("Enter");
}

describe.runIf(run)("the demo page in Chromium", () => {
  const agent = new RecordingDemoAgent({ tokensPerSecond: 60, replyWords: WORDS });
  let browser: Browser;
  let server: TestServer;
  let proxy: TcpProxy;
  let page: Page;
  let errors: string[];
  let closePage: () => Promise<void>;
  beforeAll(async () => {
    [browser, server] = await Promise.all([launchChromium(), startTestServer({ AGENTWIRE_DEMO_PAGE: true }, { agent })]);
    proxy = await TcpProxy.start(server.port);
  }, 30_000);
  afterAll(async () => {
    await browser?.close();
    await proxy?.close();
    await server?.close();
  });
  afterEach(async (ctx) => {
    await page.screenshot({ path: join(screenshots, `${ctx.task.name.replace(/\W+/g, "-").slice(0, 60)}.png`) }).catch(() => undefined);
    expect(errors).toEqual([]);
    await closePage();
    proxy.blockUpgrades = false;
    proxy.retarget(server.port);
  });
  async function open(base = server.base): Promise<Page> {
    ({ page, errors, close: closePage } = await freshPage(browser));
    await page.goto(`${base}/`);
    await waitStatus(page, ["open", "fallback"]);
    return page;
  }

  it("streams a turn with the exact text, its tool call and usage", async () => {
    await open();
    await ask(page, "what is 12 * 12");
    await waitTurn(page, 0, "completed");
    expect(await turnText(page, 0)).toBe(script("what is 12 * 12", 144));
    expect(await page.$eval(".turn .you", (e) => e.textContent)).toBe("what is 12 * 12");
    expect(await page.$eval(".turn .tool", (e) => e.textContent)).toBe('calls calculator {"expression":"12 * 12"}');
    expect(await page.$eval(".turn .meta", (e) => e.textContent)).toMatch(/^\d+ in \/ \d+ out - completed: stop$/);
  });

  it("wraps a long word instead of overflowing sideways", async () => {
    await open();
    await ask(page, `${"w".repeat(400)} what is 1 + 1`);
    await waitTurn(page, 0, "completed");
    const { scroll, width } = await page.$eval("#log", (e) => ({ scroll: e.scrollWidth, width: e.clientWidth }));
    expect(scroll).toBeLessThanOrEqual(width);
    expect(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth)).toBe(true);
  });

  it("stops a running turn", async () => {
    await open();
    await ask(page, "what is 2 * 3");
    await page.waitForFunction(() => (document.querySelector(".turn .text")?.textContent ?? "").length > 5);
    await page.click("#stop");
    await waitTurn(page, 0, "cancelled");
    expect(await page.$eval(".turn .meta", (e) => e.textContent)).toContain("cancelled: cancelled");
    expect(script("what is 2 * 3", 6).startsWith(await turnText(page, 0))).toBe(true);
  });

  it("survives the drop button mid-turn with the exact text, and says it resumed", async () => {
    await open();
    await ask(page, "what is 7 * 8");
    await page.waitForFunction(() => (document.querySelector(".turn .text")?.textContent ?? "").length > 3);
    await page.click("#drop");
    await waitStatus(page, ["resumed"]);
    await page.click("#drop");
    await waitTurn(page, 0, "completed");
    expect(await turnText(page, 0)).toBe(script("what is 7 * 8", 56));
    await waitStatus(page, ["resumed"]);
  });

  it("a reload shows the same conversation and goes on in the same session", async () => {
    await open();
    await ask(page, "what is 5 * 5");
    await waitTurn(page, 0, "completed");
    const before = await page.$eval("#status", (e) => e.textContent);
    await page.reload();
    await waitTurn(page, 0, "completed");
    expect(await turnText(page, 0)).toBe(script("what is 5 * 5", 25));
    expect(await page.$eval("#status", (e) => e.textContent)).toBe(before);
    await ask(page, "what is 6 * 6");
    await waitTurn(page, 1, "completed");
    expect(await page.$$eval(".turn", (t) => t.map((e) => e.getAttribute("data-turn")))).toEqual(["t1", "t2"]);
  });

  it("a message typed while the network is down is delivered once when it is back", async () => {
    await open(proxy.base);
    proxy.retarget(1); // nothing listens there: reconnects fail until it is back
    proxy.resetAll();
    await waitStatus(page, ["reconnecting"]);
    await ask(page, "what is 9 * 9");
    expect(await page.$eval(".turn .you", (e) => e.classList.contains("pending"))).toBe(true);
    proxy.retarget(server.port);
    await waitTurn(page, 0, "completed");
    expect(await turnText(page, 0)).toBe(script("what is 9 * 9", 81));
    expect(await page.$$eval(".turn", (t) => t.length)).toBe(1);
    expect(agent.requests.filter((r) => r.step === 0 && r.history.at(-1)?.role === "user" && (r.history.at(-1) as { text: string }).text === "what is 9 * 9")).toHaveLength(1);
  });

  it("says the session is gone after a standalone server restarts, and starts a new one on request", async () => {
    const first = await startTestServer({ AGENTWIRE_DEMO_PAGE: true }, { agent });
    proxy.retarget(first.port);
    await open(proxy.base);
    await first.close();
    const restarted = await startTestServer({ AGENTWIRE_DEMO_PAGE: true }, { agent });
    try {
      proxy.retarget(restarted.port);
      proxy.resetAll();
      await waitStatus(page, ["gone"]);
      expect(await page.$eval("#new-session", (e) => (e as HTMLElement).hidden)).toBe(false);
      await page.click("#new-session");
      await waitStatus(page, ["open"]);
      await ask(page, "what is 4 * 4");
      await waitTurn(page, 0, "completed");
      expect(await turnText(page, 0)).toBe(script("what is 4 * 4", 16));
    } finally {
      await restarted.close();
    }
  });

  it("falls back to SSE when WebSocket upgrades are refused, and streams the same turn", async () => {
    proxy.blockUpgrades = true;
    await open(proxy.base);
    expect(await statusOf(page)).toBe("fallback");
    await ask(page, "what is 3 * 7");
    await waitTurn(page, 0, "completed");
    expect(await turnText(page, 0)).toBe(script("what is 3 * 7", 21));
  });
});
