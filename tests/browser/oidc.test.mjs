// Sign-in through the company's identity provider, clicked in a real browser: tenure's
// sign-in page, oidc-provider's login form over HTTPS (oidc_provider.mjs), and back. The Rust
// test crates/tenure/tests/console_browser.rs starts tenure and the provider and describes
// them in the environment; it checks the audit afterwards.
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { chromium, request } from "playwright-core";

const require = createRequire(import.meta.url);
const AXE = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

const BASE = process.env.TENURE_URL;
const ISSUER = process.env.OIDC_ISSUER;
const PROVIDER = process.env.OIDC_NAME;
const SHOTS = process.env.SCREENSHOTS;
assert.ok(BASE && ISSUER && PROVIDER && SHOTS, "run through console_browser.rs");
mkdirSync(SHOTS, { recursive: true });

let browser;
let shot = 0;
const violations = [];

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
});

after(async () => {
  await browser?.close();
  assert.deepEqual(violations, [], "accessibility violations");
});

async function look(page, name) {
  shot += 1;
  await page.screenshot({ path: `${SHOTS}/oidc-${String(shot).padStart(2, "0")}-${name}.png`, fullPage: true });
  if (!page.url().startsWith(BASE)) return; // the provider's own pages are not ours to judge
  const result = await page.evaluate(async (source) => {
    if (!window.axe) (0, eval)(source);
    const r = await window.axe.run(document, { resultTypes: ["violations"] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help }));
  }, AXE);
  for (const v of result.filter((v) => v.impact === "serious" || v.impact === "critical")) {
    violations.push(`${name}: ${v.id} (${v.impact}) ${v.help}`);
  }
}

/** The provider's test doors (its certificate is the tests' own CA's: not the browser's). */
async function provider(path) {
  const ctx = await request.newContext({ ignoreHTTPSErrors: true });
  const r = await ctx.post(`${ISSUER}${path}`);
  assert.equal(r.status(), 200, `${path}: ${await r.text()}`);
  await ctx.dispose();
}

/**
 * A fresh browser signs in as `login` through the provider, from tenure's sign-in page.
 * Returns the page where it ends, and the callback URL the provider sent it to.
 */
async function signIn(login, name) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, ignoreHTTPSErrors: true });
  const page = await context.newPage();
  let callback = null;
  page.on("request", (r) => {
    if (r.url().startsWith(`${BASE}/sign-in/oidc/callback`)) callback = r.url();
  });
  await page.goto(`${BASE}/sign-in?next=%2Freviews`);
  const button = page.getByRole("link", { name: `Sign in with ${PROVIDER}` });
  await button.waitFor();
  if (name) await look(page, `${name}-sign-in-page`);
  await button.click();
  await page.waitForURL((u) => u.href.startsWith(ISSUER));
  await page.locator('input[name="login"]').fill(login);
  await page.locator('input[name="password"]').fill("whatever the provider wants");
  await page.locator('button[type="submit"]').click();
  await page.waitForURL((u) => u.href.startsWith(BASE));
  await page.waitForLoadState("load");
  // Signed in, the callback's page moves on by itself; refused, it stays and says why.
  if (new URL(page.url()).pathname.startsWith("/sign-in/oidc/callback") && (await page.locator("#reason").count()) === 0) {
    await page.waitForURL((u) => !u.pathname.startsWith("/sign-in/oidc/callback"));
    await page.waitForLoadState("load");
  }
  return { page, context, callback };
}

async function whoami(page) {
  const r = await page.request.get(`${BASE}/api/v1/session`);
  return { status: r.status(), body: r.status() === 200 ? await r.json() : await r.text() };
}

test("a person whose group maps to Reviewer signs in as a reviewer, made at the first sign-in", async () => {
  const { page, context } = await signIn("rita", "reviewer");
  assert.equal(new URL(page.url()).pathname, "/reviews", "on to where they were going");
  await look(page, "reviewer-signed-in");
  const me = await whoami(page);
  assert.equal(me.status, 200, JSON.stringify(me));
  assert.equal(me.body.user, "rita@example.com");
  assert.equal(me.body.role, "reviewer");
  // Their account page: no tenure password or second factor to manage, their sessions.
  await page.goto(`${BASE}/account`);
  await page.getByText("You sign in through your company's identity provider").waitFor();
  assert.equal(await page.getByRole("link", { name: "Change your password" }).count(), 0);
  await look(page, "reviewer-account");
  // A reviewer cannot open the users' settings.
  const settings = await page.goto(`${BASE}/settings`);
  assert.equal(settings.status(), 403);
  await context.close();
});

test("nobody's groups map to a role: a refusal page that says why", async () => {
  const { page, context } = await signIn("nora", "refused");
  assert.ok(page.url().startsWith(`${BASE}/sign-in/oidc/callback`), page.url());
  const reason = await page.locator("#reason").innerText();
  assert.match(reason, /no tenure role is given to your groups/i);
  assert.match(reason, /sales/, "the groups it had are named");
  await look(page, "no-role-refused");
  assert.equal((await whoami(page)).status, 401, "not signed in");
  await context.close();
});

test("the role follows the groups at each sign-in; without a role, the person is shut out, tokens too", async () => {
  await provider("/test/groups?login=rita&groups=tenure-admins");
  let s = await signIn("rita");
  assert.equal((await whoami(s.page)).body.role, "admin");
  // A token of her own, made in her session.
  const me = await whoami(s.page);
  const made = await s.page.request.post(`${BASE}/api/v1/tokens`, {
    headers: { "x-csrf-token": me.body.csrf_token, origin: BASE },
    data: { name: "rita script", role: "admin" },
  });
  assert.equal(made.status(), 201, await made.text());
  const token = (await made.json()).token;
  const withToken = async () => (await (await request.newContext()).get(`${BASE}/api/v1/whoami`, { headers: { authorization: `Bearer ${token}` } })).status();
  assert.equal(await withToken(), 200);
  await s.context.close();

  // Her groups no longer give a role: refused, disabled, her token stops.
  await provider("/test/groups?login=rita&groups=sales");
  s = await signIn("rita");
  assert.match(await s.page.locator("#reason").innerText(), /no tenure role/i);
  await s.context.close();
  assert.equal(await withToken(), 401, "a shut-out person's token stops");

  // Back in a group with a role: enabled again, the token with her.
  await provider("/test/groups?login=rita&groups=tenure-reviewers");
  s = await signIn("rita");
  assert.equal((await whoami(s.page)).body.role, "reviewer");
  await s.context.close();
  assert.equal(await withToken(), 200, "she is back: her token works, within her role");
});

test("a replayed answer (the same state and code again) is refused", async () => {
  const { page, context, callback } = await signIn("rita");
  assert.ok(callback, "the provider sent the browser to tenure's callback");
  assert.equal((await whoami(page)).body.role, "reviewer");
  const again = await page.goto(callback);
  assert.equal(again.status(), 400);
  assert.match(await page.locator("#reason").innerText(), /unknown, was used already/i);
  await look(page, "replayed-state-refused");
  await context.close();
});

for (const [what, said] of [
  ["audience", /audience/i],
  ["expired", /expired/i],
  ["key", /signature/i],
]) {
  test(`an ID token ${what === "key" ? "signed by another key" : what === "audience" ? "for another audience" : "that has expired"} is refused`, async () => {
    await provider(`/test/forge?what=${what}`);
    const { page, context } = await signIn("rita");
    assert.ok(page.url().startsWith(`${BASE}/sign-in/oidc/callback`), page.url());
    const reason = await page.locator("#reason").innerText();
    assert.match(reason, /did not check out/i);
    assert.match(reason, said);
    assert.equal((await whoami(page)).status, 401, "not signed in");
    if (what === "key") await look(page, "forged-token-refused");
    await context.close();
  });
}

test("the provider rotates its signing key: tenure reads the new one and signs people in", async () => {
  await provider("/test/rotate");
  const { page, context } = await signIn("rita");
  const me = await whoami(page);
  assert.equal(me.status, 200, `signed in after the rotation: ${page.url()} ${await page.content()}`);
  await context.close();
});
