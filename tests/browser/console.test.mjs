// The admin's first hour in the console, clicked in a real browser (Debian's chromium through
// playwright-core) against a real `tenure serve` and the real sandbox, which the Rust test
// crates/tenure/tests/console_browser.rs starts and describes in the environment. Every page
// visited is checked with axe-core and saved as a screenshot under $SCREENSHOTS.
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { createHmac } from "node:crypto";
import { chromium } from "playwright-core";

const require = createRequire(import.meta.url);
const AXE = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

const BASE = process.env.TENURE_URL;
const ONE_TIME = process.env.TENURE_ONE_TIME;
const SANDBOX_URL = process.env.SANDBOX_URL;
const SANDBOX_TOKEN = process.env.SANDBOX_TOKEN;
const SHOTS = process.env.SCREENSHOTS;
const HR_FILE = process.env.TENURE_HR_FILE;
const PASSWORD = "a long admin passphrase 42";
const CONNECTION = "Connection-Bearer Token-1";

assert.ok(BASE && ONE_TIME && SANDBOX_URL && SANDBOX_TOKEN && SHOTS && HR_FILE, "run through console_browser.rs");
mkdirSync(SHOTS, { recursive: true });

let browser;
let shot = 0;
const violations = [];
const consoleErrors = [];

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    // The flags this machine kind needs: no network of its own for the browser beyond localhost.
    args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
});

after(async () => {
  await browser?.close();
});

async function newPage() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await context.newPage();
  page.on("console", (m) => {
    // A page answered 403 or 422 on purpose is logged as a failed load: the responses below
    // tell those apart from a missing script, style or icon.
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) {
      consoleErrors.push(`${page.url()}: ${m.text()}`);
    }
  });
  page.on("response", (r) => {
    const kind = r.request().resourceType();
    if (kind !== "document" && kind !== "fetch" && kind !== "xhr" && r.status() >= 400) {
      consoleErrors.push(`${page.url()}: ${kind} ${r.url()} answered ${r.status()}`);
    }
  });
  page.on("pageerror", (e) => consoleErrors.push(`${page.url()}: ${e.message}`));
  return page;
}

// A screenshot of the page as it stands, and its accessibility checked: any serious or
// critical axe-core violation fails the story.
async function look(page, name) {
  shot += 1;
  await page.screenshot({ path: `${SHOTS}/${String(shot).padStart(2, "0")}-${name}.png`, fullPage: true });
  const result = await page.evaluate(async (source) => {
    // Evaluated through the DevTools protocol, which the page's CSP does not govern.
    if (!window.axe) (0, eval)(source);
    const r = await window.axe.run(document, { resultTypes: ["violations"] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(" ")) }));
  }, AXE);
  for (const v of result.filter((v) => v.impact === "serious" || v.impact === "critical")) {
    violations.push(`${name}: ${v.id} (${v.impact}) ${v.help}: ${v.nodes.join(", ")}`);
  }
}

/** The code an authenticator app shows now for a base32 key (RFC 6238: HMAC-SHA1, 30 s, 6 digits). */
function totp(key, at = Date.now()) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = 0;
  let value = 0;
  const bytes = [];
  for (const c of key) {
    value = ((value << 5) | alphabet.indexOf(c)) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      bytes.push((value >>> (bits - 8)) & 255);
      bits -= 8;
    }
  }
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(at / 30000)));
  const h = createHmac("sha1", Buffer.from(bytes)).update(counter).digest();
  return String((h.readUInt32BE(h[19] & 15) & 0x7fffffff) % 1000000).padStart(6, "0");
}

async function signIn(page, user, password) {
  await page.goto(`${BASE}/`);
  assert.match(page.url(), /\/sign-in/, "a signed-out browser is sent to sign in");
  await page.getByLabel("User name").fill(user);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
}

test("the admin's first hour", async () => {
  const page = await newPage();

  // Signed out, any page leads to sign-in; a wrong password says so.
  await page.goto(`${BASE}/connections`);
  assert.match(page.url(), /\/sign-in\?next=%2Fconnections|\/sign-in\?next=\/connections/);
  await look(page, "sign-in");
  await page.getByLabel("User name").fill("admin");
  await page.getByLabel("Password").fill("not the password at all");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByText("Wrong user name or password").waitFor();
  await look(page, "sign-in-wrong-password");

  // The one-time password, then the forced change.
  await page.getByLabel("Password").fill(ONE_TIME);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(/\/password$/);
  await page.getByText("one-time password").first().waitFor();
  await look(page, "password-forced");
  // Anything else waits until the password is changed.
  await page.goto(`${BASE}/connections`);
  assert.match(page.url(), /\/password$/, "a one-time password leads only to its change");
  await page.getByLabel("Current password").fill(ONE_TIME);
  await page.getByLabel("New password", { exact: true }).fill(PASSWORD);
  await page.getByLabel("New password again").fill(PASSWORD + " typo");
  await page.getByRole("button", { name: "Save the new password" }).click();
  await page.getByText("The two new passwords differ").waitFor();
  await page.getByLabel("Current password").fill(ONE_TIME);
  await page.getByLabel("New password", { exact: true }).fill(PASSWORD);
  await page.getByLabel("New password again").fill(PASSWORD);
  await page.getByRole("button", { name: "Save the new password" }).click();
  await page.waitForURL(/\/\?said=password$/);

  // The dashboard with no connection: a clear way to add one; name and role in the bar.
  await page.getByText("No connection yet").waitFor();
  assert.match(await page.locator(".who").innerText(), /admin/i);
  await look(page, "dashboard-empty");
  await page.getByRole("link", { name: "Add your first connection" }).click();
  await page.waitForURL(/\/connections\/new$/);

  // The connection form: the default name, the URL normalised as it is typed.
  assert.equal(await page.getByLabel("Connection Name").inputValue(), CONNECTION);
  await page.getByLabel("Instance URL").fill("acme");
  await page.getByText("Will be saved as https://acme.monday.com/scim/v2/").waitFor();
  await page.getByLabel("Instance URL").fill(SANDBOX_URL);
  await page.getByText(`Will be saved as ${SANDBOX_URL.replace(/\/?$/, "/")}`).waitFor();

  // A wrong token: the test fails at authentication and says what to do.
  await page.getByLabel("Access token").fill("this-is-not-the-token");
  await page.getByRole("button", { name: "Test connection" }).click();
  await page.getByText("The test failed.").waitFor();
  const failed = page.locator("ol.steps li", { hasText: "Authentication" });
  await failed.getByText("Failed").waitFor();
  assert.match(await failed.innerText(), /refused the token/);
  assert.match(await failed.innerText(), /Fix: generate a new token/);
  await look(page, "connection-test-failed");
  // Saving after a failed test needs the explicit choice.
  await page.getByRole("button", { name: "Save connection" }).click();
  await page.getByText("nothing was saved").waitFor();
  await page.getByLabel(/Save although the test failed/).waitFor();
  await look(page, "connection-save-refused");

  // The right token: every step passes, then it is saved and never shown again.
  await page.getByLabel("Access token").fill(SANDBOX_TOKEN);
  await page.getByRole("button", { name: "Test connection" }).click();
  await page.getByText("The connection works.").waitFor();
  for (const step of ["Address allowed", "TLS", "Authentication", "ServiceProviderConfig", "What the token may do", "Users visible"]) {
    await page.locator("ol.steps li", { hasText: step }).getByText("Passed").waitFor();
  }
  await look(page, "connection-test-passed");
  await page.getByRole("button", { name: "Save connection" }).click();
  await page.waitForURL(/\/connections\/Connection-Bearer%20Token-1\?said=saved$/);
  await page.getByText("Saved. The test passed").waitFor();
  const html = await page.content();
  assert.ok(!html.includes(SANDBOX_TOKEN), "the token is never shown again");
  assert.ok(html.includes("****" + SANDBOX_TOKEN.slice(-4)), "only its last four characters");
  await look(page, "connection-saved");

  // Pause and resume.
  await page.getByRole("button", { name: "Pause" }).click();
  await page.getByText("Paused: scheduled runs pass it by.").waitFor();
  await look(page, "connection-paused");
  await page.goto(`${BASE}/`);
  await page.locator(".card", { hasText: CONNECTION }).getByText("Paused", { exact: true }).waitFor();
  await look(page, "dashboard-paused");
  await page.getByRole("link", { name: CONNECTION }).click();
  await page.getByRole("button", { name: "Resume" }).click();
  await page.getByText("Resumed").waitFor();

  // A test of the saved connection, with its sealed token.
  await page.getByRole("button", { name: "Test connection" }).click();
  await page.getByText("The connection works.").waitFor();

  // Removal asks for the name and says what becomes of the links.
  await page.getByRole("link", { name: "Remove…" }).click();
  await page.getByText("left as they are").waitFor();
  await page.getByLabel("Type the connection's name to confirm").fill("wrong name");
  await page.getByRole("button", { name: "Remove the connection" }).click();
  await page.getByText("Type the name exactly").waitFor();
  await look(page, "connection-remove-refused");
  await page.goto(`${BASE}/connections`);
  await page.getByRole("cell", { name: CONNECTION }).waitFor();
  await look(page, "connections");

  // Roles and mapping, through the forms: two roles, a mapping whose formula error is shown
  // where it is as it is typed, what would change, then saved (the HR definition comes with
  // the configuration, so it comes before the first HR file).
  await page.getByRole("navigation").getByRole("link", { name: "Rules" }).click();
  await page.waitForURL(/\/rules$/);
  await page.getByText("No role yet").waitFor();
  await look(page, "rules-empty");
  await page.getByRole("link", { name: "Add a role" }).click();
  await page.waitForURL(/\/rules\/roles\/new$/);
  await page.getByLabel("Name", { exact: true }).fill("Engineering");
  await page.getByLabel("Field of condition 1").selectOption("department");
  await page.getByLabel("Test of condition 1").selectOption("equals");
  await page.getByLabel("Value of condition 1").fill("Engineering");
  await page.getByLabel(`Gives an account on ${CONNECTION}`).check();
  await page.getByLabel("Teams", { exact: true }).fill("Engineering");
  await page.getByRole("button", { name: "Count the workers it takes" }).click();
  await page.getByText("No HR data loaded yet").waitFor();
  assert.equal(await page.getByLabel("Value of condition 1").inputValue(), "Engineering", "the form keeps what was typed");
  await look(page, "role-engineering");
  await page.getByRole("button", { name: "Keep this role in my draft" }).click();
  await page.waitForURL(/\/rules\?said=kept/);
  await page.getByText("Unsaved draft.").waitFor();
  await page.getByRole("link", { name: "Add a role" }).click();
  await page.getByLabel("Name", { exact: true }).fill("Staff");
  await page.getByLabel("Field of condition 1").selectOption("employment_type");
  await page.getByLabel("Test of condition 1").selectOption("in");
  await page.getByLabel("Value of condition 1").fill("employee, contractor, intern");
  // A second condition, then taken away again: the form keeps what was typed.
  await page.getByRole("button", { name: "Add a condition" }).click();
  await page.getByLabel("Field of condition 2").waitFor();
  await page.getByRole("button", { name: "Remove condition 2" }).click();
  await page.getByLabel("Field of condition 1").waitFor();
  assert.equal(await page.getByLabel("Field of condition 2").count(), 0);
  assert.equal(await page.getByLabel("Value of condition 1").inputValue(), "employee, contractor, intern");
  await page.getByLabel(`Gives an account on ${CONNECTION}`).check();
  await page.getByRole("button", { name: "Keep this role in my draft" }).click();
  await page.waitForURL(/\/rules\?said=kept/);
  const roleRows = page.locator("table", { hasText: "Match now" }).locator("tbody tr");
  assert.deepEqual(await roleRows.locator("th").allInnerTexts(), ["Engineering", "Staff"]);
  await page.getByRole("button", { name: "Move Staff up" }).click();
  await page.waitForURL(/\/rules\?said=kept/);
  assert.deepEqual(await roleRows.locator("th").allInnerTexts(), ["Staff", "Engineering"]);
  await page.getByRole("button", { name: "Move Staff down" }).click();
  await page.waitForURL(/\/rules\?said=kept/);
  assert.deepEqual(await roleRows.locator("th").allInnerTexts(), ["Engineering", "Staff"]);
  await look(page, "rules-draft");
  // The mapping: default teams, and the title from HR with a formula error fixed.
  await page.getByRole("link", { name: "Edit settings and mapping" }).click();
  await page.waitForURL(/\/rules\/connections\//);
  await page.getByLabel("Default teams").fill("Everyone");
  await page.getByRole("button", { name: "Add a mapping" }).click();
  await page.getByLabel("Attribute of row 5").selectOption("title");
  await page.getByLabel("Formula of row 5").fill("=UPPER(title");
  const check = page.locator("#check-4");
  await check.getByText(/Line 1, column \d+:/).waitFor();
  assert.match(await check.innerText(), /\^/, "a caret under the place");
  await look(page, "mapping-formula-error");
  await page.getByRole("button", { name: "Keep in my draft" }).click();
  await page.getByText("Not kept:").waitFor();
  await page.getByLabel("Formula of row 5").fill("=title");
  await check.getByText("The formula reads.").waitFor();
  await page.getByRole("button", { name: "Keep in my draft" }).click();
  await page.waitForURL(/\/rules\?said=kept/);
  // What changes if I save (no worker yet), then saved.
  await page.getByRole("link", { name: "What changes if I save" }).click();
  await page.waitForURL(/\/rules\/changes$/);
  await page.getByText("The guard would let that run through").waitFor();
  await page.getByText("No worker's outcome changes.").waitFor();
  await page.getByRole("button", { name: "Save as the configuration in force" }).click();
  await page.waitForURL(/\/rules\?said=saved$/);
  await page.getByText("Saved: this is now the configuration in force").waitFor();

  // An HR file with one bad row: the rest is taken, the row is quarantined and said why.
  const lines = readFileSync(HR_FILE, "utf8").trimEnd().split("\n");
  const header = lines[0].split(",");
  const bad = lines[2].split(",");
  bad[header.indexOf("hire_date")] = "31/02/2024";
  lines[2] = bad.join(",");
  // Jean Martin's (1008) title is longer than the sandbox takes in one request (413): his create fails.
  const jean = lines.findIndex((l) => l.startsWith("1008,"));
  const long = lines[jean].split(",");
  long[header.indexOf("title")] = "Sales Engineer ".repeat(63).trim();
  lines[jean] = long.join(",");
  await page.getByRole("navigation").getByRole("link", { name: "HR data" }).click();
  await page.waitForURL(/\/hr$/);
  await look(page, "hr-empty");
  await page.getByLabel("File", { exact: true }).setInputFiles({ name: "workers.csv", mimeType: "text/csv", buffer: Buffer.from(lines.join("\n") + "\n") });
  await page.getByRole("button", { name: "Upload" }).click();
  await page.waitForURL(/\/hr\/loads\//);
  await page.getByText("1 row(s) set aside").waitFor();
  const q = page.locator("table", { hasText: "Reason" }).locator("tbody tr");
  assert.equal(await q.count(), 1);
  assert.match(await q.first().innerText(), /hire_date/);
  assert.match(await q.first().innerText(), /31\/02\/2024/);
  // The taken rows' values by field, most frequent first.
  const dept = page.locator("table", { hasText: "Most frequent" }).locator("tbody tr", { hasText: "department" });
  assert.match(await dept.first().innerText(), /Engineering \(\d+\)/);
  await look(page, "hr-load-quarantined");
  const download = page.waitForEvent("download");
  await page.getByRole("link", { name: /Download the quarantined rows/ }).click();
  const csv = readFileSync(await (await download).path(), "utf8");
  assert.match(csv.split("\n")[0], /^row,line,why,employee_id,first_name/);
  assert.match(csv, /31\/02\/2024/);
  // A file whose header does not match is refused whole, and the history says why.
  await page.getByRole("navigation").getByRole("link", { name: "HR data" }).click();
  await page.getByLabel("File", { exact: true }).setInputFiles({ name: "wrong.csv", mimeType: "text/csv", buffer: Buffer.from("id,name\n1,Ann\n") });
  await page.getByRole("button", { name: "Upload" }).click();
  await page.getByText("Refused whole, nothing was taken").waitFor();
  await page.getByRole("navigation").getByRole("link", { name: "HR data" }).click();
  assert.equal(await page.locator("table", { hasText: "Outcome" }).locator("tbody tr").count(), 2);
  await page.getByText("Refused", { exact: true }).waitFor();
  // Each waiting event in UTC and in the worker's own zone (Amélie Durand works in Paris).
  const amelie = page.locator("table", { hasText: "worker's zone" }).locator("tr", { hasText: "1001" }).first();
  assert.match(await amelie.innerText(), /CES?T \(Europe\/Paris\)/);
  await look(page, "hr-history");

  // With HR data, each role counts its workers; a mapping shows its value for a chosen
  // worker; what would change is listed worker by worker before it is saved.
  await page.getByRole("navigation").getByRole("link", { name: "Rules" }).click();
  // The counts fill in once the page is drawn.
  await page.locator("#roles-section[hx-get]").waitFor({ state: "detached" });
  assert.match(await roleRows.nth(0).locator("td.num").nth(1).innerText(), /^3/);
  assert.match(await roleRows.nth(1).locator("td.num").nth(1).innerText(), /^6/);
  assert.match(await roleRows.nth(0).innerText(), /Amélie Durand/);
  // Each team with what puts workers in it: the role's own team, the default team for the rest.
  const teamRows = page.locator("table", { hasText: "Put there by" }).locator("tbody tr");
  assert.equal(await teamRows.count(), 2);
  assert.match(await teamRows.nth(0).innerText(), /Engineering\s+role "Engineering"\s+3/);
  assert.match(await teamRows.nth(1).innerText(), /Everyone\s+the connection's default teams\s+6/);
  await look(page, "rules-counts");
  await page.getByRole("link", { name: "Engineering", exact: true }).click();
  await page.getByRole("button", { name: "Count the workers it takes" }).click();
  await page.getByText("Its condition takes 3 of the 9 workers now").waitFor();
  await page.getByRole("link", { name: "Cancel" }).click();
  await page.getByRole("link", { name: "Edit settings and mapping" }).click();
  await page.getByLabel("Show values for worker").fill("1006");
  // Rows come back in the attributes' order: the title's row is found by its attribute.
  const titleRow = page.locator("tr", { has: page.locator('option[value="title"][selected]') });
  await titleRow.getByRole("textbox").fill("=UPPER(title)");
  await titleRow.locator(".formula-check").getByText(/For Priya .*\(1006\): [A-Z ]+$/).waitFor();
  await look(page, "mapping-formula-value");
  await page.getByRole("button", { name: "Keep in my draft" }).click();
  await page.waitForURL(/\/rules\?said=kept/);
  await page.getByRole("link", { name: "What changes if I save" }).click();
  await page.getByRole("link", { name: /^attributes \([1-9]/ }).waitFor();
  const firstDiff = page.locator("table", { hasText: "Attributes" }).locator("tbody tr").first();
  assert.match(await firstDiff.innerText(), /title/);
  await look(page, "rules-changes");
  await page.getByRole("button", { name: "Save as the configuration in force" }).click();
  await page.waitForURL(/\/rules\?said=saved$/);
  // What was saved is the file the rules page downloads and `config export` writes.
  const [exported, downloaded] = await page.evaluate(async () => {
    const a = await (await fetch("/api/v1/config?format=toml")).text();
    const b = await (await fetch("/rules/file.toml")).text();
    return [a, b];
  });
  assert.equal(downloaded, exported);
  assert.match(exported, /\[connection\.mappings\.title\]\nformula = "=UPPER\(title\)"/);
  await look(page, "rules-saved");

  // The plan, grouped by kind with the guard's verdict; applied, and followed to its end.
  await page.goto(`${BASE}/connections/${encodeURIComponent(CONNECTION)}`);
  await page.getByRole("link", { name: "Plan and apply" }).click();
  await page.waitForURL(/\/plan$/);
  // The page at once, the plan filled in when made.
  await page.getByText("The guard lets this run through").waitFor();
  await look(page, "plan");
  const creates = page.locator("table", { hasText: "Workers" }).locator("tr", { hasText: "create" });
  assert.ok(Number(await creates.locator("td.num").first().innerText()) > 0, "workers to create");
  await page.getByLabel("Kind", { exact: true }).selectOption("create");
  await page.getByRole("button", { name: "Filter" }).click();
  await page.waitForURL(/kind=create/);
  const rows = page.locator("table", { hasText: "Before" }).locator("tbody tr");
  assert.ok((await rows.count()) > 0);
  for (const text of await rows.allInnerTexts()) assert.match(text, /create/);
  await page.getByRole("button", { name: "Apply this plan" }).click();
  await page.waitForURL(/\/runs\/[0-9a-f-]+$/);
  await look(page, "run-started");
  for (let i = 0; i < 120; i++) {
    await page.reload();
    if ((await page.locator("h2#counts").innerText()).startsWith("Finished")) break;
    await page.waitForTimeout(500);
  }
  assert.equal(await page.locator("h2#counts").innerText(), "Finished with failures");
  // The failure with the target's status and words, and a retry of that worker alone.
  const failures = page.locator("table", { hasText: "What the target said" }).locator("tbody tr");
  const jeanFailed = failures.filter({ hasText: "1008" }).first();
  assert.match(await jeanFailed.innerText(), /create\s+413/);
  await look(page, "run-finished");
  const firstRun = page.url();
  await jeanFailed.getByRole("button", { name: "Retry worker 1008" }).click();
  await page.waitForURL((u) => /\/runs\/[0-9a-f-]+$/.test(u.pathname) && u.href !== firstRun);
  for (let i = 0; i < 120; i++) {
    await page.reload();
    if ((await page.locator("h2#counts").innerText()).startsWith("Finished")) break;
    await page.waitForTimeout(500);
  }
  assert.equal(await page.locator("h2#counts").innerText(), "Finished with failures");
  for (const row of await failures.allInnerTexts()) assert.match(row, /^1008\t/, "the retry worked on Jean alone");
  await look(page, "run-retried");
  await page.getByRole("navigation").getByRole("link", { name: "Runs" }).click();
  await page.locator("table tbody tr").first().getByText("Finished").waitFor();
  await look(page, "runs");

  // Four leavers of eight accounts: the guard stops the run, and the dashboard says why.
  const leavers = readFileSync(HR_FILE, "utf8").trimEnd().split("\n");
  for (const id of ["1001", "1004", "1006", "1009"]) {
    const i = leavers.findIndex((l) => l.startsWith(id + ","));
    const cells = leavers[i].split(",");
    cells[header.indexOf("status")] = "terminated";
    cells[header.indexOf("termination_date")] = "2026-11-02";
    leavers[i] = cells.join(",");
  }
  await page.getByRole("navigation").getByRole("link", { name: "HR data" }).click();
  await page.getByLabel("File", { exact: true }).setInputFiles({ name: "leavers.csv", mimeType: "text/csv", buffer: Buffer.from(leavers.join("\n") + "\n") });
  await page.getByRole("button", { name: "Upload" }).click();
  await page.waitForURL(/\/hr\/loads\//);
  await page.goto(`${BASE}/connections/${encodeURIComponent(CONNECTION)}/plan`);
  await page.getByText("The mass-deprovision guard would hold these 4 deactivations").waitFor();
  await look(page, "plan-guarded");
  await page.getByRole("button", { name: "Apply this plan" }).click();
  await page.waitForURL(/\/runs\//);
  // The run's page says what the guard held, that the rest went on, and what lets it through.
  for (let i = 0; i < 60 && (await page.getByText("The mass-deprovision guard held 4 deactivations").count()) === 0; i++) {
    await page.waitForTimeout(250);
    await page.reload();
  }
  await page.getByText(/The mass-deprovision guard held 4 deactivations: .* The rest of the run was applied\. .* confirming the number 4/).waitFor();
  await page.getByRole("heading", { name: "Finished, part held by a guard" }).waitFor();
  await look(page, "run-guard-held");
  await page.goto(`${BASE}/`);
  await page.getByText("The mass-deprovision guard holds deactivations back; the rest of each run goes on.").waitFor();
  await look(page, "dashboard-guard");

  // A viewer, made through the API with the admin's session, sees no admin action and gets
  // the 403 page when forcing one.
  const csrf = JSON.parse(await page.locator("body").getAttribute("hx-headers"))["X-CSRF-Token"];
  const made = await page.evaluate(async (csrf) => {
    const r = await fetch("/api/v1/users", {
      method: "POST",
      headers: { "content-type": "application/json", "x-csrf-token": csrf },
      body: JSON.stringify({ name: "vera", role: "viewer", password: "vera has a long password" }),
    });
    return r.status;
  }, csrf);
  assert.equal(made, 201);
  const madeReviewer = await page.evaluate(async (csrf) => {
    const r = await fetch("/api/v1/users", {
      method: "POST",
      headers: { "content-type": "application/json", "x-csrf-token": csrf },
      body: JSON.stringify({ name: "rita", role: "reviewer", password: "rita has a long password" }),
    });
    return r.status;
  }, csrf);
  assert.equal(madeReviewer, 201);

  // Sign-out ends the session: the dashboard asks to sign in again.
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByText("You have signed out.").waitFor();
  await page.goto(`${BASE}/`);
  assert.match(page.url(), /\/sign-in/);

  const viewer = await newPage();
  await signIn(viewer, "vera", "vera has a long password");
  await viewer.waitForURL(`${BASE}/`);
  assert.match(await viewer.locator(".who").innerText(), /vera/);
  assert.match(await viewer.locator(".who").innerText(), /viewer/i);
  assert.equal(await viewer.getByRole("link", { name: "Add a connection" }).count(), 0, "no add for a viewer");
  await look(viewer, "dashboard-viewer");
  await viewer.getByRole("link", { name: CONNECTION }).click();
  await viewer.waitForURL(/\/connections\/Connection-Bearer%20Token-1$/);
  for (const action of ["Pause", "Test connection", "Test and replace the token"]) {
    assert.equal(await viewer.getByRole("button", { name: action }).count(), 0, `no ${action} for a viewer`);
  }
  assert.equal(await viewer.getByRole("link", { name: "Remove…" }).count(), 0);
  await viewer.goto(`${BASE}/hr`);
  assert.equal(await viewer.getByRole("button", { name: "Upload" }).count(), 0, "no upload for a viewer");
  await look(viewer, "connection-viewer");
  await viewer.goto(`${BASE}/rules`);
  await viewer.locator("table th", { hasText: "Engineering" }).waitFor();
  assert.equal(await viewer.getByRole("link", { name: "Add a role" }).count(), 0, "no editing for a viewer");
  assert.equal(await viewer.getByRole("button", { name: /Move .* up/ }).count(), 0);
  await look(viewer, "rules-viewer");
  const forced = await viewer.goto(`${BASE}/connections/new`);
  assert.equal(forced.status(), 403);
  await viewer.getByRole("heading", { name: "Not allowed" }).waitFor();
  assert.match(await viewer.locator("main").innerText(), /needs the Admin role/);
  await look(viewer, "forbidden");
  // The plan and its Apply are not a viewer's: no link to them, and the page forced is the 403 page.
  const forcedPlan = await viewer.goto(`${BASE}/connections/${encodeURIComponent(CONNECTION)}/plan`);
  assert.equal(forcedPlan.status(), 403);
  assert.equal(await viewer.getByRole("button", { name: "Apply this plan" }).count(), 0);
  await viewer.getByRole("heading", { name: "Not allowed" }).waitFor();
  // A forced form post (its CSRF token valid) is refused the same way.
  const vcsrf = JSON.parse(await viewer.locator("body").getAttribute("hx-headers"))["X-CSRF-Token"];
  const status = await viewer.evaluate(async ([csrf, name]) => {
    const r = await fetch(`/connections/${encodeURIComponent(name)}/pause`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: `csrf=${csrf}`,
    });
    return [r.status, r.headers.get("content-type"), (await r.text()).includes("Not allowed")];
  }, [vcsrf, CONNECTION]);
  assert.deepEqual(status, [403, "text/html; charset=utf-8", true]);

  // The viewer is offered no confirmation; a reviewer confirms the guard with its number.
  await viewer.goto(`${BASE}/`);
  await viewer.getByText("The mass-deprovision guard holds deactivations back; the rest of each run goes on.").waitFor();
  assert.equal(await viewer.getByRole("button", { name: "Confirm and apply" }).count(), 0);
  const reviewer = await newPage();
  await signIn(reviewer, "rita", "rita has a long password");
  await reviewer.waitForURL(`${BASE}/`);
  await reviewer.getByLabel("Deactivations to confirm").fill("3");
  await reviewer.getByRole("button", { name: "Confirm and apply" }).click();
  await reviewer.waitForURL(/\/runs\//);
  // A wrong number confirms nothing, and a Reviewer starts no ordinary run: nothing applied.
  for (let i = 0; i < 60 && (await reviewer.getByText("The mass-deprovision guard stopped this run").count()) === 0; i++) {
    await reviewer.waitForTimeout(250);
    await reviewer.reload();
  }
  await reviewer.getByText(/The mass-deprovision guard stopped this run: .* Nothing was applied\. .* confirming the number 4/).waitFor();
  await reviewer.getByRole("heading", { name: "Nothing applied" }).waitFor();
  await look(reviewer, "run-guard-refused");
  await reviewer.goto(`${BASE}/`);
  await reviewer.getByText("The mass-deprovision guard holds deactivations back; the rest of each run goes on.").waitFor();
  await look(reviewer, "dashboard-guard-wrong-number");
  await reviewer.getByLabel("Deactivations to confirm").fill("4");
  await reviewer.getByRole("button", { name: "Confirm and apply" }).click();
  await reviewer.waitForURL(/\/runs\//);
  for (let i = 0; i < 120; i++) {
    await reviewer.reload();
    if ((await reviewer.locator("h2#counts").innerText()).startsWith("Finished")) break;
    await reviewer.waitForTimeout(500);
  }
  assert.equal(await reviewer.locator("h2#counts").innerText(), "Finished");
  await look(reviewer, "run-confirmed");
  await reviewer.goto(`${BASE}/`);
  assert.equal(await reviewer.getByText("The mass-deprovision guard holds deactivations back; the rest of each run goes on.").count(), 0, "the guard is cleared");

  // An unknown page is a page, not JSON.
  const missing = await viewer.goto(`${BASE}/no-such-page`);
  assert.equal(missing.status(), 404);
  await viewer.getByRole("heading", { name: "Not found" }).waitFor();

  assert.deepEqual(violations, [], "accessibility violations");
  assert.deepEqual(consoleErrors, [], "errors in the browser's console (a CSP refusal shows here)");
});

// The day after: the people who use tenure every day. It follows the first hour above (its
// users, rules, runs and HR data), as node:test runs a file's tests in order.
test("a day of the team", async () => {
  const hr = readFileSync(HR_FILE, "utf8").trimEnd().split("\n");
  const header = hr[0].split(",");
  // The HR data as the first hour left it: four leavers.
  const today = hr.map((line) => {
    const cells = line.split(",");
    if (["1001", "1004", "1006", "1009"].includes(cells[0])) {
      cells[header.indexOf("status")] = "terminated";
      cells[header.indexOf("termination_date")] = "2026-11-02";
    }
    if (cells[0] === "1002") cells[header.indexOf("title")] = "Staff Engineer";
    return cells.join(",");
  });

  // A helpdesk viewer: why has Carlos Silva, the new hire in São Paulo, no account yet?
  const viewer = await newPage();
  await signIn(viewer, "vera", "vera has a long password");
  await viewer.waitForURL(`${BASE}/`);
  await viewer.getByRole("navigation").getByRole("link", { name: "Workers" }).click();
  await viewer.waitForURL(/\/workers$/);
  await viewer.getByText("All 10 workers").waitFor();
  await look(viewer, "workers");
  // Typed as a person types: each keystroke asks again after a pause, the last answer wins.
  await viewer.getByLabel("Id, name or e-mail").pressSequentially("jean m", { delay: 60 });
  await viewer.getByText("2 found for “jean m”").waitFor();
  assert.match(viewer.url(), /\/workers\?q=jean(%20|\+)m$/, "the address keeps the search");
  const found = viewer.locator("#results tbody tr");
  assert.equal(await found.count(), 2);
  assert.match(await found.nth(1).innerText(), /1008\s+Jean Martin\s+jean\.martin2@acme\.example/);
  await viewer.getByLabel("Id, name or e-mail").fill("");
  await viewer.getByLabel("Id, name or e-mail").pressSequentially("carl", { delay: 60 });
  await viewer.getByText("1 found for “carl”").waitFor();
  await look(viewer, "workers-found");
  await viewer.locator("#results").getByRole("link", { name: "Carlos Silva" }).click();
  await viewer.waitForURL(/\/workers\/1010$/);
  // The role that takes him, test by test; nothing to do yet; his hire waits for its day.
  const roles = viewer.getByRole("table", { name: "Each role tried and each test of its condition" });
  await roles.getByText("takes this worker").first().waitFor();
  assert.match(await viewer.locator("main").innerText(), /What the next run does for this worker\s+Nothing: /);
  const events = viewer.getByRole("table", { name: "HR events, newest first" });
  const hire = events.locator("tr", { hasText: "hire" }).first();
  assert.match(await hire.innerText(), /2027[\s\S]*pending/);
  assert.equal(await viewer.getByRole("button", { name: "Provision now" }).count(), 0, "not a viewer's");
  // Times in the viewer's zone, UTC on hover.
  assert.match(await hire.locator("time").getAttribute("title"), /^2027-01-0[34] \d\d:\d\d UTC/);
  await look(viewer, "worker-why");
  // Jean Martin's first create failed (413), its retry too; the account came with the run
  // the reviewer confirmed: the timeline tells it, newest first.
  await viewer.goto(`${BASE}/workers/1008`);
  const timeline = viewer.getByRole("table", { name: "What was done for this worker, newest first" });
  assert.match(await timeline.innerText(), /create\s+created[\s\S]*create\s+failed: 413/);
  await look(viewer, "worker-timeline");

  // José is promoted; an editor provisions the change now, after reading its preview.
  const admin = await newPage();
  await signIn(admin, "admin", PASSWORD);
  await admin.waitForURL(`${BASE}/`);
  const csrf = JSON.parse(await admin.locator("body").getAttribute("hx-headers"))["X-CSRF-Token"];
  const made = await admin.evaluate(async (csrf) => {
    const r = await fetch("/api/v1/users", {
      method: "POST",
      headers: { "content-type": "application/json", "x-csrf-token": csrf },
      body: JSON.stringify({ name: "eddie", role: "editor", password: "eddie has a long password" }),
    });
    return r.status;
  }, csrf);
  assert.equal(made, 201);
  const editor = await newPage();
  await signIn(editor, "eddie", "eddie has a long password");
  await editor.waitForURL(`${BASE}/`);
  await editor.goto(`${BASE}/hr`);
  await editor.getByLabel("File", { exact: true }).setInputFiles({ name: "today.csv", mimeType: "text/csv", buffer: Buffer.from(today.join("\n") + "\n") });
  await editor.getByRole("button", { name: "Upload" }).click();
  await editor.waitForURL(/\/hr\/loads\//);
  await editor.goto(`${BASE}/workers?q=1002`);
  await editor.locator("#results").getByRole("link", { name: "Pepe García López" }).click();
  await editor.waitForURL(/\/workers\/1002$/);
  const preview = editor.getByRole("table", { name: "The planned actions for this worker" });
  assert.match(await preview.innerText(), /update[\s\S]*title: SENIOR ENGINEER → STAFF ENGINEER/);
  await look(editor, "worker-provision-preview");
  await editor.getByRole("button", { name: "Provision now" }).click();
  await editor.waitForURL(/\/runs\/[0-9a-f-]+$/);
  for (let i = 0; i < 120; i++) {
    await editor.reload();
    if ((await editor.locator("h2#counts").innerText()).startsWith("Finished")) break;
    await editor.waitForTimeout(500);
  }
  assert.equal(await editor.locator("h2#counts").innerText(), "Finished");
  await editor.goto(`${BASE}/workers/1002`);
  const account = editor.locator("dl", { hasText: "userName" });
  assert.match(await account.innerText(), /jose\.garcia@acme\.example/);
  assert.match(await account.innerText(), /active/);
  assert.match(await editor.locator("main").innerText(), /What the next run does for this worker\s+Nothing: /);
  const done = editor.getByRole("table", { name: "What was done for this worker, newest first" });
  assert.match(await done.locator("tbody tr").first().innerText(), /update/);
  await look(editor, "worker-provisioned");


  // Leavers wait for a reviewer: the admin supervises the leave and change stages.
  const toml = await admin.evaluate(async () => (await fetch("/api/v1/config?format=toml")).text());
  const supervised = toml.replace(/(\[\[connection\]\]\nname = [^\n]*\ndialect = [^\n]*\n)/, '$1supervised = ["leave", "change"]\n');
  assert.notEqual(supervised, toml, "the connection's table is found");
  const put = await admin.evaluate(async ([csrf, body]) => {
    const r = await fetch("/api/v1/config", { method: "PUT", headers: { "content-type": "application/toml", "x-csrf-token": csrf }, body });
    return [r.status, await r.text()];
  }, [csrf, supervised]);
  assert.equal(put[0], 200, put[1]);
  // The editor uploads two leavers (Sam's internship ends, Jean Martin leaves); the admin
  // sends one change of their own (José's title) as a delta; the editor's run opens reviews.
  const leaving = today.map((line) => {
    const cells = line.split(",");
    if (cells[0] === "1005" || cells[0] === "1008") {
      cells[header.indexOf("status")] = "terminated";
      cells[header.indexOf("termination_date")] = "2026-12-01";
    }
    return cells.join(",");
  });
  await editor.goto(`${BASE}/hr`);
  await editor.getByLabel("File", { exact: true }).setInputFiles({ name: "leavers.csv", mimeType: "text/csv", buffer: Buffer.from(leaving.join("\n") + "\n") });
  await editor.getByRole("button", { name: "Upload" }).click();
  await editor.waitForURL(/\/hr\/loads\//);
  const moved = [header.join(","), leaving.find((l) => l.startsWith("1002,")).replace("Staff Engineer,", "Principal Engineer,")];
  await admin.goto(`${BASE}/hr`);
  await admin.getByLabel("File", { exact: true }).setInputFiles({ name: "jose.csv", mimeType: "text/csv", buffer: Buffer.from(moved.join("\n") + "\n") });
  await admin.getByLabel("What it holds").selectOption("delta");
  await admin.getByRole("button", { name: "Upload" }).click();
  await admin.waitForURL(/\/hr\/loads\//);
  await editor.goto(`${BASE}/connections/${encodeURIComponent(CONNECTION)}/plan`);
  await editor.getByText("The guard lets this run through").waitFor();
  await editor.getByRole("button", { name: "Apply this plan" }).click();
  await editor.waitForURL(/\/runs\/[0-9a-f-]+$/);
  for (let i = 0; i < 120; i++) {
    await editor.reload();
    if ((await editor.locator("h2#counts").innerText()).startsWith("Finished")) break;
    await editor.waitForTimeout(500);
  }

  // The admin, reviewing: the queue filtered to leavers, both approved with a note.
  await admin.getByRole("navigation").getByRole("link", { name: "Reviews" }).click();
  await admin.waitForURL(/\/reviews$/);
  const waiting = admin.getByRole("table", { name: "Reviews waiting, oldest first" }).locator("tbody tr");
  assert.equal(await waiting.count(), 3);
  await look(admin, "reviews");
  // "leave" of before is read as terminations and leaves of absence: these two are terminations.
  await admin.getByLabel("Stage").selectOption("termination");
  await admin.getByRole("button", { name: "Filter" }).click();
  await admin.waitForURL(/stage=termination/);
  assert.equal(await waiting.count(), 2);
  for (const text of await waiting.allInnerTexts()) assert.match(text, /Termination[\s\S]*deactivate[\s\S]*eddie/);
  await admin.getByLabel(/Select review #\d+ \(Sam O'Brien\)/).check();
  await admin.getByLabel(/Select review #\d+ \(Jean Martin\)/).check();
  await admin.getByLabel("Note, kept with the decision").fill("Confirmed with HR: last day 1 December");
  await look(admin, "reviews-leavers-selected");
  await admin.getByRole("button", { name: "Approve selected" }).click();
  await admin.getByText("2 review(s) approved.").waitFor();
  assert.match(admin.url(), /stage=termination/, "back to the same filter");
  // The change the admin sent is not theirs to approve: refused, and said why.
  await admin.getByRole("link", { name: "Show every review waiting" }).click();
  await admin.getByLabel(/Select review #\d+ \(Pepe García López\)/).check();
  await admin.getByRole("button", { name: "Approve selected" }).click();
  await admin.getByText(/0 review\(s\) approved\. Not decided: #\d+ — you set it in motion/).waitFor();
  await admin.getByText(/another reviewer must decide it/).waitFor();
  await look(admin, "reviews-maker-checker");
  // Decided reviews say who, when and the note.
  await admin.getByRole("link", { name: "Decided" }).click();
  const decidedRows = admin.getByRole("table", { name: "Decided reviews, newest first" }).locator("tbody tr");
  assert.equal(await decidedRows.count(), 2);
  assert.match(await decidedRows.first().innerText(), /approved by user:admin[\s\S]*Confirmed with HR/);
  await look(admin, "reviews-decided");
  // The next run carries the approved ones out: both leavers deactivated.
  await admin.goto(`${BASE}/connections/${encodeURIComponent(CONNECTION)}/plan`);
  await admin.getByText("The guard lets this run through").waitFor();
  await admin.getByRole("button", { name: "Apply this plan" }).click();
  await admin.waitForURL(/\/runs\/[0-9a-f-]+$/);
  for (let i = 0; i < 120; i++) {
    await admin.reload();
    if ((await admin.locator("h2#counts").innerText()).startsWith("Finished")) break;
    await admin.waitForTimeout(500);
  }
  await admin.goto(`${BASE}/workers/1005`);
  assert.match(await admin.locator("dl", { hasText: "userName" }).innerText(), /deactivated/);


  // An auditor (the viewer) verifies the chain and downloads who approved what.
  await viewer.getByRole("navigation").getByRole("link", { name: "Audit" }).click();
  await viewer.waitForURL(/\/audit$/);
  await viewer.getByRole("link", { name: "Verify the chain" }).click();
  await viewer.getByText(/The chain is intact: all \d+ records follow one another and match their hashes\. Its head is record #\d+, hash [0-9a-f]{64}\./).waitFor();
  await look(viewer, "audit-verified");
  await viewer.getByLabel("Kind").selectOption("decision");
  await viewer.getByLabel("Action (e.g. deactivate, approve)").fill("approve");
  await viewer.getByRole("button", { name: "Filter" }).click();
  await viewer.waitForURL(/action=approve/);
  const audited = viewer.getByRole("table", { name: "Audit records, newest first" }).locator("tbody tr");
  assert.equal(await audited.count(), 2, "the two leavers approved");
  const seqs = (await audited.locator("td:first-child").allInnerTexts()).map((t) => t.trim()).sort();
  for (const text of await audited.allInnerTexts()) assert.match(text, /approve[\s\S]*user:admin/);
  await look(viewer, "audit-filtered");
  const file = viewer.waitForEvent("download");
  await viewer.getByRole("link", { name: "Download CSV" }).click();
  const exported = readFileSync(await (await file).path(), "utf8").trimEnd().split("\n");
  assert.match(exported[0], /^seq,at,run,connection,worker,action,outcome/);
  const fileSeqs = exported.slice(1).map((l) => l.split(",")[0]).sort();
  assert.deepEqual(fileSeqs, seqs, "the file's rows are the page's");
  assert.ok(exported.slice(1).every((l) => l.includes(",approve,")));

  // The admin adds a reviewer and makes a token for a script: each secret shown once; the
  // token works, is revoked, and is refused at once.
  await admin.getByRole("navigation").getByRole("link", { name: "Settings" }).click();
  await admin.waitForURL(/\/settings$/);
  await admin.getByLabel("User name").fill("rex");
  await admin.getByLabel("Their role").selectOption("reviewer");
  await admin.getByRole("button", { name: "Add", exact: true }).click();
  await admin.getByText("rex is added as Reviewer.").waitFor();
  const rexPassword = (await admin.locator("#once-value").innerText()).trim();
  assert.ok(rexPassword.length >= 12, "a one-time password is shown");
  await look(admin, "settings-user-added");
  await admin.getByLabel("What it is for").fill("nightly report");
  await admin.getByLabel("The token's role").selectOption("viewer");
  await admin.getByRole("button", { name: "Make the token" }).click();
  await admin.getByText("The token “nightly report” is made.").waitFor();
  const token = (await admin.locator("#once-value").innerText()).trim();
  assert.match(token, /^tenure_[0-9a-f]+_[0-9a-f]+$/);
  await look(admin, "settings-token-made");
  const navHeight = await admin.locator("nav.nav").evaluate((n) => n.getBoundingClientRect().height);
  assert.ok(navHeight < 50, `the sections fit on one line at 1280 px (${navHeight} px high)`);
  const asScript = async () => (await fetch(`${BASE}/api/v1/status`, { headers: { authorization: `Bearer ${token}` } })).status;
  assert.equal(await asScript(), 200, "the token works");
  await admin.goto(`${BASE}/settings`);
  assert.equal(await admin.getByText(token).count(), 0, "never shown again");
  await admin.getByRole("button", { name: "Revoke the token nightly report" }).click();
  await admin.getByText("The token “nightly report” is revoked").waitFor();
  assert.equal(await asScript(), 401, "refused from the next request on");
  await look(admin, "settings-token-revoked");
  // The new reviewer signs in with the one-time password and is made to choose their own.
  const rex = await newPage();
  await signIn(rex, "rex", rexPassword);
  await rex.waitForURL(/\/password$/);
  // Rex's laptop is lost: the admin ends every session of Rex, who must sign in again.
  await admin.goto(`${BASE}/settings`);
  await admin.getByRole("button", { name: "End sessions of rex" }).click();
  await admin.getByText("Every session of rex has ended").waitFor();
  await look(admin, "settings-sessions-ended");
  await rex.goto(`${BASE}/password`);
  await rex.waitForURL(/\/sign-in/);
  // Where the admin is signed in: when, from which address, in which browser.
  await admin.goto(`${BASE}/account`);
  const mine = admin.getByRole("table", { name: "Your sessions, newest first" }).locator("tbody tr", { hasText: "this browser" });
  assert.match(await mine.innerText(), /127\.0\.0\.1/);
  assert.match(await mine.innerText(), /Chrome/);
  await look(admin, "account-sessions");

  // Every page in a phone-sized window: no sideways scrolling of the page (wide tables scroll
  // inside themselves), and each one's accessibility checked again.
  await admin.setViewportSize({ width: 390, height: 844 });
  const pages = [
    ["/", "dashboard"], ["/connections", "connections"], [`/connections/${encodeURIComponent(CONNECTION)}`, "connection"],
    [`/connections/${encodeURIComponent(CONNECTION)}/plan`, "plan"], ["/rules", "rules"], ["/hr", "hr"],
    ["/workers", "workers"], ["/workers/1002", "worker"], ["/reviews", "reviews"], ["/reviews?decided=1", "reviews-decided"],
    ["/runs", "runs"], ["/dead-letters", "dead-letters"], ["/audit", "audit"], ["/notifications", "notifications"],
    ["/settings", "settings"], ["/account", "account"],
  ];
  for (const [path, name] of pages) {
    await admin.goto(`${BASE}${path}`);
    await admin.waitForLoadState("networkidle");
    const [scroll, width, wide] = await admin.evaluate(() => {
      // The outermost elements that reach past the window (inside a scrolling table: fine).
      const out = [...document.querySelectorAll("body *")].filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1 && !e.closest(".table-wrap, .nav"));
      const top = out.filter((e) => !out.includes(e.parentElement)).slice(0, 5);
      return [document.documentElement.scrollWidth, window.innerWidth, top.map((e) => `${e.tagName.toLowerCase()}.${e.className} "${e.textContent.trim().slice(0, 40)}"`)];
    });
    assert.ok(scroll <= width, `${path} scrolls sideways at 390 px: ${scroll} > ${width}: ${wide.join("; ")}`);
    await look(admin, `narrow-${name}`);
  }

  // By keyboard alone: every control the Reviews page offers is reached with Tab, and the
  // one in focus shows it.
  await admin.setViewportSize({ width: 1280, height: 860 });
  await admin.goto(`${BASE}/reviews`);
  const seen = new Set();
  for (let i = 0; i < 40; i++) {
    await admin.keyboard.press("Tab");
    const f = await admin.evaluate(() => {
      const e = document.activeElement;
      // Past the last control, focus leaves the page.
      if (!e || e === document.body) return null;
      const s = getComputedStyle(e);
      return { what: `${e.tagName} ${e.textContent.trim().slice(0, 30) || e.getAttribute("aria-label") || e.id}`, ring: s.outlineStyle !== "none" && parseFloat(s.outlineWidth) > 0 || s.boxShadow !== "none" };
    });
    if (!f) break;
    assert.ok(f.ring, `no visible focus on ${f.what}`);
    seen.add(f.what);
  }
  for (const want of ["Filter", "Approve selected", "Reject selected"]) {
    assert.ok([...seen].some((w) => w.includes(want)), `${want} is not reached by Tab: ${[...seen].join(" | ")}`);
  }

  // A request that fails is said in place; the page stays as it was.
  await viewer.goto(`${BASE}/workers`);
  await viewer.route("**/workers?q=**", (route) => route.fulfill({ status: 503, contentType: "text/html", body: "<!doctype html><main><h1>Something went wrong</h1><p>The store is not answering.</p></main>" }));
  await viewer.getByLabel("Id, name or e-mail").pressSequentially("pri", { delay: 40 });
  await viewer.getByRole("alert").getByText("That did not work (503): The store is not answering.").waitFor();
  assert.equal(await viewer.locator("#results tbody tr").count(), 10, "the results stay as they were");
  await viewer.unroute("**/workers?q=**");
  // htmx logs the failure it was made to meet: that one, and only that one, is expected.
  for (let i = consoleErrors.length - 1; i >= 0; i--) {
    if (consoleErrors[i].includes("Response Status Error Code 503 from /workers")) consoleErrors.splice(i, 1);
  }
  await look(viewer, "workers-request-failed");

  // Pages that only show are read without JavaScript: the worker's why, the queue, the audit.
  const plain = await browser.newContext({ javaScriptEnabled: false, viewport: { width: 1280, height: 860 } });
  const noScript = await plain.newPage();
  await noScript.goto(`${BASE}/sign-in`);
  await noScript.getByLabel("User name").fill("vera");
  await noScript.getByLabel("Password").fill("vera has a long password");
  await noScript.getByRole("button", { name: "Sign in" }).click();
  await noScript.waitForURL(`${BASE}/`);
  await noScript.goto(`${BASE}/workers?q=jean`);
  assert.equal(await noScript.locator("#results tbody tr").count(), 2);
  await noScript.goto(`${BASE}/workers/1008`);
  assert.match(await noScript.locator("main").innerText(), /Roles, in order[\s\S]*takes this worker[\s\S]*Timeline/);
  await noScript.goto(`${BASE}/reviews?decided=1`);
  assert.equal(await noScript.getByRole("table", { name: "Decided reviews, newest first" }).locator("tbody tr").count(), 2);
  await noScript.goto(`${BASE}/audit?kind=decision`);
  assert.ok((await noScript.getByRole("table", { name: "Audit records, newest first" }).locator("tbody tr").count()) > 0);
  await plain.close();

  // Vera sets up a second factor: the QR code and the key on the page, a code from the app,
  // the recovery codes shown once; her next sign-in asks for a code (a recovery code here).
  const vp = await newPage();
  await signIn(vp, "vera", "vera has a long password");
  await vp.waitForURL(`${BASE}/`);
  await vp.goto(`${BASE}/account`);
  await vp.getByRole("link", { name: "Set up a second factor" }).click();
  await vp.waitForURL(/\/account\/second-factor$/);
  await vp.getByRole("img", { name: "QR code to scan with an authenticator app" }).waitFor();
  await look(vp, "second-factor-enrol");
  await vp.getByText("Cannot scan it?").click();
  const key = (await vp.locator("#totp-secret").innerText()).replace(/\s/g, "");
  await vp.getByLabel("The app's code").fill(totp(key));
  await vp.getByLabel("Your password").fill("vera has a long password");
  await vp.getByRole("button", { name: "Turn it on" }).click();
  await vp.getByText("The second factor is on").waitFor();
  const recovery = (await vp.locator("#recovery-codes li").allInnerTexts()).map((c) => c.trim());
  assert.equal(recovery.length, 10);
  await look(vp, "second-factor-codes");
  await vp.getByRole("button", { name: "Sign out" }).click();
  await vp.waitForURL(/\/sign-in/);
  await vp.getByLabel("User name").fill("vera");
  await vp.getByLabel("Password").fill("vera has a long password");
  await vp.getByRole("button", { name: "Sign in" }).click();
  await vp.waitForURL(/\/sign-in\/code/);
  await look(vp, "second-factor-code-page");
  await vp.getByLabel("The six digits your authenticator app shows for tenure").fill(recovery[0]);
  await vp.getByRole("button", { name: "Sign in" }).click();
  await vp.waitForURL(`${BASE}/`);
  await vp.goto(`${BASE}/account/second-factor`);
  await vp.getByText("Recovery codes left: 9").waitFor();
  // A token of her own, for the command line's --server: it acts as Vera, a viewer.
  await vp.goto(`${BASE}/account`);
  await vp.getByLabel("What it is for").fill("laptop cli");
  await vp.getByRole("button", { name: "Make a token" }).click();
  await vp.getByText("Your token “laptop cli” is made.").waitFor();
  const own = (await vp.locator("#once-value").innerText()).trim();
  await look(vp, "account-own-token");
  const who = await (await fetch(`${BASE}/api/v1/whoami`, { headers: { authorization: `Bearer ${own}` } })).json();
  assert.equal(who.user, "vera", "the token acts as Vera");
  assert.equal(who.role, "viewer");
  assert.equal(await vp.getByRole("option", { name: "Admin" }).count(), 0, "no role above her own");
  assert.deepEqual(violations, [], "accessibility violations");
  assert.deepEqual(consoleErrors, [], "errors in the browser's console (a CSP refusal shows here)");
});
