// The dashboard in a real headless Chromium (driven by playwright-core):
// one row per instance, a chart that moves under load, an instance killed
// that goes and comes back, and a screenshot. Run by tests/e2e/dashboard.rs,
// which starts shoal and passes where everything is in the environment:
//   PLAYWRIGHT_CORE  the playwright-core package directory
//   CHROMIUM         the browser binary (Debian's chromium)
//   ADMIN, PROXY     http://127.0.0.1:PORT of shoal's admin and public listeners
//   INSTANCES        how many instances shoal runs (the test scales to one more)
//   TOKEN            shoal's admin.token
//   SCREENSHOT       where to save the PNG
"use strict";
const { chromium } = require(process.env.PLAYWRIGHT_CORE);

const ADMIN = process.env.ADMIN;
const PROXY = process.env.PROXY;
const INSTANCES = Number(process.env.INSTANCES || 2);

function log(...a) { console.log("[dashboard.cjs]", ...a); }

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    timeout: 60000,
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1500, height: 980 } });
    page.on("console", m => log("console:", m.type(), m.text()));
    page.on("pageerror", e => { log("page error:", e.message); process.exitCode = 1; });
    await page.goto(ADMIN + "/", { waitUntil: "load" });

    // One row per instance, all healthy.
    await page.waitForFunction(
      n => document.querySelectorAll('tr[data-instance][data-health="up"]').length === n,
      INSTANCES, { timeout: 30000 });
    const rows = await page.$$eval("tr[data-instance]", trs => trs.map(t => t.dataset.instance));
    log("rows:", rows.join(", "));
    if (rows.length !== INSTANCES) throw new Error(`expected ${INSTANCES} rows, saw ${rows}`);
    await page.waitForSelector("#live.on", { timeout: 10000 });

    // Scale without the token: 401, said on the page; with it: one more row.
    await page.fill(".scale-n", String(INSTANCES + 1));
    await page.click("button.scale");
    await page.waitForSelector("#alert:not([hidden])", { timeout: 10000 });
    const refused = await page.textContent("#alert");
    log("without the token:", refused);
    if (!refused.includes("401")) throw new Error("no 401 shown: " + refused);
    await page.fill("#token", process.env.TOKEN);
    await page.click("#token-form button");
    await page.click("button.scale");
    await page.waitForFunction(
      n => document.querySelectorAll('tr[data-instance][data-health="up"]').length === n,
      INSTANCES + 1, { timeout: 30000 });
    await page.waitForFunction(() => /scaled from/.test(document.querySelector("#alert").textContent),
                               null, { timeout: 10000 });
    log("with the token:", await page.textContent("#alert"));

    // The requests/s chart moves under load (bounded: 6 s, at most 4000 requests).
    const before = await page.$eval("#chart-rps", c => Number(c.dataset.last || 0));
    const stop = Date.now() + 6000;
    let sent = 0;
    const load = Array.from({ length: 4 }, async () => {
      while (Date.now() < stop && sent < 4000) {
        sent++;
        try { await (await fetch(PROXY + "/")).arrayBuffer(); } catch (_) {}
      }
    });
    await page.waitForFunction(() => Number(document.querySelector("#chart-rps").dataset.last) > 5,
                               null, { timeout: 15000 });
    const during = await page.$eval("#chart-rps", c => Number(c.dataset.last));
    log(`requests/s on the chart: ${before} before, ${during} under load`);
    await Promise.all(load);
    log(`sent ${sent} requests`);

    // Kill an instance: its row shows it go (its exit in the events, a
    // state other than up while the page looks) and come back (a new pid,
    // in rotation again).
    const status = await (await fetch(ADMIN + "/api/v1/status")).json();
    const victim = status.instances.find(i => i.health === "up");
    await page.evaluate(id => {
      window.__seen = [];
      const note = () => {
        const tr = document.querySelector(`tr[data-instance="${id}"]`);
        window.__seen.push(tr ? `${tr.dataset.state}/${tr.dataset.health}` : "gone");
      };
      new MutationObserver(note).observe(document.querySelector("#apps"), { childList: true, subtree: true });
    }, victim.id);
    log(`killing ${victim.id} (pid ${victim.pid})`);
    process.kill(victim.pid, "SIGKILL");
    await page.waitForFunction(id => [...document.querySelectorAll('#events li[data-kind="exited"]')]
      .some(li => li.textContent.includes(id)), victim.id, { timeout: 20000 });
    await page.waitForFunction(([id, pid]) => {
      const tr = document.querySelector(`tr[data-instance="${id}"]`);
      return tr && tr.dataset.health === "up" && tr.children[3].textContent !== String(pid);
    }, [victim.id, victim.pid], { timeout: 30000 });
    const seen = [...new Set(await page.evaluate(() => window.__seen))];
    log(`${victim.id} as the page showed it:`, seen.join(" → "));
    if (!seen.some(s => !s.endsWith("/up"))) throw new Error(`${victim.id} never showed gone: ${seen}`);
    const restarts = await page.$eval(`tr[data-instance="${victim.id}"]`, tr => Number(tr.children[6].textContent));
    if (restarts < 1) throw new Error(`restarts of ${victim.id}: ${restarts}`);

    // The picture, taken under some more traffic (bounded: 5 s, 3000 requests).
    const until = Date.now() + 5000;
    let more = 0;
    const traffic = Promise.all(Array.from({ length: 2 }, async () => {
      while (Date.now() < until && more < 3000) {
        more++;
        try { await (await fetch(PROXY + (more % 50 ? "/" : "/status/503"))).arrayBuffer(); } catch (_) {}
      }
    }));
    await page.waitForTimeout(3500);
    await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true });
    await traffic;
    log("screenshot:", process.env.SCREENSHOT);
    log("ok");
  } finally {
    await browser.close();
  }
}

main().catch(e => { console.error("[dashboard.cjs] FAILED:", e); process.exit(1); });
