// Headless Chromium (Debian's package, driven by playwright-core) through the authorization
// server's sign-in and consent pages, as a person would: it opens the authorization URL, signs in,
// approves or denies, and returns the URL the browser was sent back to.
import { chromium } from "playwright-core";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

/**
 * @param {string} authorizationUrl
 * @param {{username: string, password: string, decision?: "approve" | "deny", screenshot?: string}} who
 * @returns {Promise<URL>} where the browser was redirected (the client's redirect URI)
 */
export async function authorizeInBrowser(authorizationUrl, who) {
  const redirect = new URL(new URL(authorizationUrl).searchParams.get("redirect_uri"));
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  try {
    const page = await browser.newPage();
    let landed;
    // Nothing listens at the client's redirect URI: read where the server sends the browser.
    page.on("response", (res) => {
      const location = res.headers()["location"];
      if ([302, 303].includes(res.status()) && location?.startsWith(redirect.origin)) landed = new URL(location);
    });
    const until = async (what) => {
      for (let i = 0; i < 100 && !landed; i++) await page.waitForTimeout(100);
      if (!landed) throw new Error(`the browser was not sent back after ${what}: ${page.url()}`);
    };
    await page.goto(authorizationUrl).catch(() => {});
    if (await page.locator("input[name=password]").count()) {
      await page.fill("input[name=username]", who.username);
      await page.fill("input[name=password]", who.password);
      await page.click("button[type=submit]");
      await page.waitForLoadState().catch(() => {});
    }
    if (!landed) {
      await page.waitForSelector("button[value=approve]", { timeout: 15000 }).catch(async (e) => {
        const text = (await page.locator("body").innerText().catch(() => "")).slice(0, 400);
        throw new Error(`no consent page at ${page.url()}: ${text}`);
      });
      if (who.screenshot) await page.screenshot({ path: who.screenshot, fullPage: true });
      const button = who.decision === "deny" ? "button[value=deny]" : "button[value=approve]";
      await page.click(button, { noWaitAfter: true }).catch(() => {});
    }
    await until("the consent page");
    return landed;
  } finally {
    await browser.close();
  }
}
