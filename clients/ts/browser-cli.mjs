// Prints where headless Chromium lands after signing in and approving an authorization URL
// (for the Python SDK check). usage: node browser-cli.mjs AUTHORIZATION_URL USERNAME PASSWORD
import { authorizeInBrowser } from "./browser.mjs";

const [url, username, password] = process.argv.slice(2);
const back = await authorizeInBrowser(url, { username, password, decision: "approve" });
console.log(back.href);
