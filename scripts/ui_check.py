#!/usr/bin/env python3
"""The dashboard (/ui) in a real browser: Debian's chromium driven by
Playwright (scripts/ui-check.sh installs both and runs this).

Starts `recwal serve` (the debug binary) on a free loopback port with a
fresh data dir and a token, uploads the committed model fixtures, seeds a
few events, then checks:

- every page loads with no console error and no uncaught exception, and
  shows its data (with the token);
- without the token a page shows the refusal clearly (banner and box);
- an event ingested through the API shows in the explorer's answers and
  reasons for that user, and in the user's interactions;
- activating a model version from the UI without the token is refused (the
  UI shows it; the server's active version is unchanged), a cancelled
  confirmation changes nothing, and with the token it succeeds (the server
  reports the new version); a roll back from the UI too;
- a checkpoint from the Log page moves the snapshot LSN.

Screenshots of every page go to the output directory (--out, default
target/ui-check/). Exits 1 on the first failure, with the reason.
"""

import argparse
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "models"
# Chrome's own line for a fetch answered 401: expected where the test sends
# a call without the token, an error anywhere else.
REFUSED_LOAD = "the server responded with a status of 401"


class CheckFailed(Exception):
    pass


def check(condition, what):
    if not condition:
        raise CheckFailed(what)


class Server:
    def __init__(self, binary, work):
        self.token = "ui-check-" + secrets.token_hex(16)
        self.work = work
        self.stdout = open(work / "stdout.txt", "w+b")
        self.stderr = open(work / "server.log", "wb")
        env = dict(os.environ)
        env.pop("RECWAL_TOKEN", None)
        self.process = subprocess.Popen(
            [str(binary), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(work / "data"),
             "--log-format", "json", "--token", self.token],
            stdout=self.stdout, stderr=self.stderr, env=env)
        self.base = "http://" + self._address()
        self._wait_ready()

    def _address(self):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            check(self.process.poll() is None, f"recwal serve exited with {self.process.returncode}; "
                  f"see {self.work / 'server.log'}")
            first = (self.work / "stdout.txt").read_bytes().split(b"\n", 1)
            if len(first) == 2 and first[0].startswith(b"listening on "):
                return first[0][len(b"listening on "):].decode().strip()
            time.sleep(0.05)
        raise CheckFailed("recwal serve did not say where it listens within 60 s")

    def _wait_ready(self):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if self.call("GET", "/readyz", auth=False)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise CheckFailed("the server never became ready")

    def call(self, method, path, body=None, content_type="application/json", auth=True):
        request = urllib.request.Request(self.base + path, data=body, method=method)
        if body is not None:
            request.add_header("Content-Type", content_type)
        if auth:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def json(self, method, path, body=None, **kwargs):
        data = None if body is None else json.dumps(body).encode()
        status, raw = self.call(method, path, data, **kwargs)
        check(200 <= status < 300, f"{method} {path} answered {status}: {raw[:500]!r}")
        return json.loads(raw)

    def ingest(self, events):
        self.json("POST", "/v1/events", {"events": events, "durability": "always"})

    def active_version(self):
        return self.json("GET", "/admin/models/status").get("active")

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.stdout.close()
        self.stderr.close()


class Console:
    """Console errors and uncaught exceptions of a page, by step."""

    def __init__(self, page):
        self.errors = []
        page.on("console", lambda message: message.type == "error" and self.errors.append(
            f"console error: {message.text} ({message.location.get('url', '')})"))
        page.on("pageerror", lambda error: self.errors.append(f"uncaught exception: {error}"))

    def take(self):
        errors, self.errors = self.errors, []
        return errors

    def expect_clean(self, step):
        errors = self.take()
        check(not errors, f"{step}: " + "; ".join(errors))

    def expect_only_refusals(self, step):
        errors = self.take()
        unexpected = [error for error in errors if REFUSED_LOAD not in error]
        check(not unexpected, f"{step}: " + "; ".join(unexpected))
        return errors


def settle(page, ms=600):
    """Lets late calls of the page finish (so their errors are counted)."""
    page.wait_for_timeout(ms)


def use_token(page, token):
    page.fill("#token", token)
    page.click("#token-use")
    expect(page.locator("#token-state")).to_have_text("token set")


def open_page(page, name):
    page.click(f"#nav a[data-page={name}]")
    expect(page.locator("#page")).to_have_attribute("data-page", name)


def answer_section(page, strategy):
    return page.locator(f"section.answer[data-strategy={strategy}]")


def row_of(section, item):
    """The answer's table row for `item` (its reasons are in the last cell), or None."""
    rows = section.locator("tbody tr")
    for at in range(rows.count()):
        row = rows.nth(at)
        if row.locator("code.item").inner_text().strip() == item:
            return row
    return None


def route_row(page, route):
    """The cells of the charts page's route table row for `route`, or None."""
    rows = page.locator("#route-table tbody tr")
    for at in range(rows.count()):
        cells = [cell.strip() for cell in rows.nth(at).locator("td").all_inner_texts()]
        if cells and cells[0] == route:
            return cells
    return None


# A metrics text with what the parser must handle: comments, an escaped
# quote and a comma inside a label value, a +Inf bucket.
PROM_SAMPLE = (
    '# HELP h A histogram.\n# TYPE h histogram\n'
    'h_bucket{route="/a",le="0.1"} 10\nh_bucket{route="/a",le="0.2"} 30\nh_bucket{route="/a",le="+Inf"} 40\n'
    'h_bucket{route="/b",le="0.1"} 5\nh_bucket{route="/b",le="0.2"} 5\nh_bucket{route="/b",le="+Inf"} 5\n'
    'h_count{route="/a"} 40\nh_count{route="/b"} 5\n'
    'l{v="a\\"b,c",w="x"} 3\n'
)


def check_prom_module(page):
    """The charts' arithmetic (prom.js), run in the page as it runs there."""
    got = page.evaluate("""async (text) => {
        const prom = await import(new URL('prom.js', document.baseURI).href);
        const m = prom.parse(text);
        const a = prom.buckets(m, 'h', (l) => l.route === '/a');
        const before = [[0.1, 4], [0.2, 10], [Infinity, 10]];
        return {
            p50: prom.quantile(0.5, a),
            p99: prom.quantile(0.99, a),
            all: prom.buckets(m, 'h').map(([le, n]) => [String(le), n]),
            delta_p50: prom.quantile(0.5, prom.deltaBuckets(a, before)),
            label: (m.get('l') || [{}])[0].labels,
            count: prom.sum(m, 'h_count'),
            rate: prom.rate(30, 10, 4),
            reset: prom.rate(5, 10, 4),
            empty: prom.quantile(0.5, [[0.1, 0], [Infinity, 0]]),
        };
    }""", PROM_SAMPLE)
    expected = {
        "p50": 0.15,  # rank 20 of 40: halfway through (0.1, 0.2]
        "p99": 0.2,  # in the +Inf bucket: the highest finite bound
        "all": [["0.1", 15], ["0.2", 35], ["Infinity", 45]],
        "delta_p50": 0.1 + 0.1 * 9 / 14,  # the interval: cumulative 6, 20, 30; rank 15 in (0.1, 0.2]
        "label": {"v": 'a"b,c', "w": "x"},
        "count": 45,
        "rate": 5,
        "reset": None,
        "empty": None,
    }
    for key, want in expected.items():
        have = got.get(key)
        same = abs(have - want) < 1e-9 if isinstance(want, float) and have is not None else have == want
        check(same, f"prom.js: {key} is {have!r}, expected {want!r}")


def confirm(page, accept):
    page.wait_for_selector("dialog#confirm[open]")
    page.click("#confirm-ok" if accept else "#confirm-cancel")
    page.wait_for_selector("dialog#confirm:not([open])", state="attached")


def run(server, out, chromium):
    shot = lambda page, name: page.screenshot(path=str(out / f"{name}.png"), full_page=True)
    # Users and items of this test only.
    alice, bob, carol = "ui-alice", "ui-bob", "ui-carol"
    book, lamp, desk = "ui-book", "ui-lamp", "ui-desk"
    server.ingest([
        {"user": alice, "item": book, "kind": "purchase"},
        {"user": bob, "item": book, "kind": "click"},
        {"user": bob, "item": lamp, "kind": "click"},
        {"user": carol, "item": lamp, "kind": "click"},
        {"user": carol, "item": desk, "kind": "click"},
    ])
    for name in ("linear_v1", "linear_v2"):
        status, raw = server.call("POST", "/admin/models", (FIXTURES / f"{name}.onnx").read_bytes(),
                                  content_type="application/octet-stream")
        check(status == 201, f"uploading {name}: {status} {raw[:300]!r}")
    server.json("POST", "/admin/models/1/activate")
    check(server.active_version() == 1, "version 1 active before the UI acts")

    # Locator assertions poll from Playwright's injected script: string
    # predicates (wait_for_function) would need eval, which the page's CSP
    # forbids, as it should.
    expect.set_options(timeout=20000)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True,
                                             args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            # ---- no token: the refusal is shown, not swallowed.
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.set_default_timeout(20000)
            console = Console(page)
            page.goto(server.base + "/ui")
            page.wait_for_selector("#health table")
            page.wait_for_selector("#stats .message.error")
            stats_text = page.inner_text("#stats")
            check("Refused (401" in stats_text, f"overview without the token: the stats box says {stats_text!r}")
            check(page.is_visible("#banner"), "overview without the token: no refusal banner")
            check("needs a token" in page.inner_text("#banner"), "the banner does not say a token is needed")
            settle(page)
            refused = console.expect_only_refusals("overview without the token")
            check(refused, "overview without the token: the browser saw no 401 at all")
            shot(page, "overview-no-token")
            context.close()

            # ---- with the token: every page, no console error.
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.set_default_timeout(20000)
            console = Console(page)
            page.goto(server.base + "/ui/")
            # The first load has no token yet (refused, as above).
            page.wait_for_selector("#stats .message.error")
            settle(page)
            console.expect_only_refusals("first load, before the token is entered")
            use_token(page, server.token)
            page.wait_for_selector("#stats table")
            page.wait_for_selector("#readiness table")
            check("ready" in page.inner_text("#readiness"), "overview: readiness not shown")
            check(page.locator("#stats").inner_text().find("events applied") >= 0, "overview: no engine counts")
            check(not page.is_visible("#banner"), "overview with the token: a refusal banner")
            settle(page)
            console.expect_clean("overview")
            shot(page, "overview")

            open_page(page, "log")
            page.wait_for_selector("#wal table")
            page.wait_for_selector("#disk table")
            disk = page.inner_text("#disk-use")
            check("of at most 4.0 GiB" in disk, f"log: disk use and bound not shown: {disk!r}")
            durable = page.inner_text("#lsn-durable").replace(",", "")
            check(durable.isdigit() and int(durable) >= 1, f"log: durable LSN {durable!r}")
            before = page.inner_text("#snapshot-lsn")
            page.click("#checkpoint")
            confirm(page, accept=True)
            page.wait_for_selector("#checkpoint-result .message.ok")
            expect(page.locator("#snapshot-lsn")).not_to_have_text(before)
            snapshot = server.json("GET", "/admin/stats")["snapshot_lsn"]
            check(snapshot >= 1, f"the checkpoint from the UI wrote no snapshot (snapshot_lsn {snapshot})")
            settle(page)
            console.expect_clean("log")
            shot(page, "log")

            open_page(page, "charts")
            page.wait_for_selector("#route-table table")
            page.wait_for_selector("#chart-rates svg path")
            routes = page.inner_text("#route-table")
            check("/metrics" in routes, f"charts: the routes table lacks /metrics: {routes!r}")
            check_prom_module(page)
            # Requests made while the page polls show as a rate and latencies.
            recommend = "/v1/users/{user}/recommend"
            stop = threading.Event()
            def load():
                while not stop.is_set():
                    server.call("GET", f"/v1/users/{bob}/recommend?n=5")
                    time.sleep(0.02)
            loader = threading.Thread(target=load, daemon=True)
            loader.start()
            try:
                deadline = time.monotonic() + 20
                cells = None
                while time.monotonic() < deadline:
                    cells = route_row(page, recommend)
                    if cells and float(cells[1] or 0) > 0 and cells[2] != "—":
                        break
                    page.wait_for_timeout(250)
                check(cells and float(cells[1] or 0) > 0, f"charts: no request rate for {recommend} under load: {cells}")
                check(cells[2] != "—" and cells[3] != "—", f"charts: no latency for {recommend} under load: {cells}")
                page.select_option("#latency-route", recommend)
                page.wait_for_selector("#chart-latency svg path")
                settle(page, 2200)
                shot(page, "charts")
            finally:
                stop.set()
                loader.join()
            console.expect_clean("charts")

            # ---- explorer: an event ingested through the API shows up.
            open_page(page, "explorer")
            page.fill("#explore-user", "ui-nobody")
            page.click("#explore-go")
            page.wait_for_selector("#no-interactions")
            check(answer_section(page, "blend").inner_text().find("cold start") >= 0,
                  "explorer: an unknown user's answer is not marked as a cold start")
            settle(page)
            console.expect_clean("explorer, an unknown user")
            page.fill("#explore-user", alice)
            page.click("#explore-go")
            page.wait_for_selector("section.answer[data-strategy=user_cf]")
            # Before the event nothing links alice to carol or desk to her
            # items: desk may fill the list as a popular item, not for them.
            expect(page.locator("#interaction-table code.item")).to_have_count(1)
            check(page.locator("#interaction-table").inner_text().find(lamp) < 0,
                  f"explorer: {lamp} among {alice}'s interactions before the event")
            for strategy, name in (("user_cf", carol), ("item_rank", lamp)):
                row = row_of(answer_section(page, strategy), desk)
                reasons = row.locator("td").last.inner_text() if row is not None else ""
                check(name not in reasons, f"explorer: {strategy} names {name} for {desk} before the event: {reasons!r}")
            server.ingest([{"user": alice, "item": lamp, "kind": "click"}])
            page.click("#explore-go")
            expect(page.locator("#interaction-table code.item").filter(has_text=re.compile(f"^{re.escape(lamp)}$"))
                   ).to_have_count(1)
            row = row_of(answer_section(page, "user_cf"), desk)
            check(row is not None, f"explorer: {desk} not in {alice}'s user_cf answer after the event")
            reasons = row.locator("td").last.inner_text()
            check(carol in reasons, f"explorer: user_cf's reasons for {desk} do not name {carol}: {reasons!r}")
            row = row_of(answer_section(page, "item_rank"), desk)
            check(row is not None, f"explorer: {desk} not in {alice}'s item_rank answer after the event")
            reasons = row.locator("td").last.inner_text()
            check(lamp in reasons, f"explorer: item_rank's reasons for {desk} do not name {lamp}: {reasons!r}")
            for strategy in ("blend", "user_cf", "item_rank", "item_rank_exact", "popularity", "ease", "ials"):
                check(answer_section(page, strategy).count() == 1, f"explorer: no {strategy} answer")
            settle(page)
            console.expect_clean("explorer")
            shot(page, "explorer")

            # ---- models: activation refused without the token, done with it.
            open_page(page, "models")
            page.wait_for_selector("#versions")
            check(page.inner_text("#active-version").strip() == "1", "models: active version 1 not shown")
            check(page.locator("#breaker").count() == 1, "models: no breaker state")
            settle(page)
            console.expect_clean("models")
            shot(page, "models")

            page.click("#token-forget")
            page.click("button.activate[data-version='2']")
            confirm(page, accept=True)
            page.wait_for_selector("#model-result .message.error")
            result = page.inner_text("#model-result")
            check("Refused (401" in result, f"models: the refused activation is not shown: {result!r}")
            check(page.is_visible("#banner"), "models: no refusal banner after a refused activation")
            check(server.active_version() == 1, "the activation without the token changed the active version")
            settle(page)
            console.expect_only_refusals("activation without the token")
            shot(page, "models-refused")

            use_token(page, server.token)
            page.wait_for_selector("#versions")
            page.click("button.activate[data-version='2']")
            confirm(page, accept=False)
            settle(page, 300)
            check(server.active_version() == 1, "a cancelled confirmation activated version 2")
            page.click("button.activate[data-version='2']")
            confirm(page, accept=True)
            page.wait_for_selector("#model-result .message.ok:has-text('Version 2 is active')")
            check(server.active_version() == 2, "the activation with the token did not make version 2 active")
            expect(page.locator("#active-version")).to_have_text("2")
            page.click("#rollback")
            confirm(page, accept=True)
            page.wait_for_selector("#model-result .message.ok:has-text('Rolled back')")
            check(server.active_version() == 1, "the roll back from the UI did not make version 1 active again")
            settle(page)
            console.expect_clean("models, with the token")
            shot(page, "models-activated")
            context.close()
        finally:
            browser.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=str(ROOT / "target" / "debug" / "recwal"))
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument("--out", default=str(ROOT / "target" / "ui-check"))
    args = parser.parse_args()
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    work = Path(tempfile.mkdtemp(prefix="recwal-ui-check-"))
    server = None
    try:
        server = Server(Path(args.binary), work)
        run(server, out, args.chromium)
    except (CheckFailed, PlaywrightError) as failure:
        print(f"ui-check: FAILED: {failure}", file=sys.stderr)
        if server is not None:
            server.stop()
            shutil.copy(work / "server.log", out / "server.log")
        print(f"ui-check: screenshots so far and the server log are in {out}", file=sys.stderr)
        return 1
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    shots = sorted(path.name for path in out.glob("*.png"))
    print(f"ui-check: ok: every page loads without console errors; refusals shown; "
          f"explorer and model actions checked; {len(shots)} screenshots in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
