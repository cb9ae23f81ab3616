"""Swagger UI at /docs in a real browser (Playwright driving Debian's
chromium; scripts/swagger-ui-check.sh starts `recwal serve` with a token and
runs this file).

The token rules of docs/SERVER.md, "Swagger UI": the page and its files load
without the token; the document is fetched with the token typed in the
page's form; every "Try it out" call carries it through Swagger's Authorize
dialog, and none does once logged out there. No console error once the
token is given.

Environment: RECWAL_URL, RECWAL_TOKEN, RECWAL_CHROMIUM (default
/usr/bin/chromium), RECWAL_SCREENSHOTS (a directory for the screenshots).
"""

import json
import os
import unittest
import urllib.request
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

URL = os.environ["RECWAL_URL"]
TOKEN = os.environ["RECWAL_TOKEN"]
CHROMIUM = os.environ.get("RECWAL_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(os.environ["RECWAL_SCREENSHOTS"])


def operation_count():
    """Operations in the served document (the page must list each once)."""
    request = urllib.request.Request(f"{URL}/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        document = json.load(answer)
    return sum(len(operations) for operations in document["paths"].values())


class SwaggerUi(unittest.TestCase):
    def test_the_page_loads_without_the_token_and_calls_the_api_with_it(self):
        SHOTS.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            errors = []
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            calls = []
            page.on("request", lambda request: calls.append((request.url, request.headers.get("authorization"))))
            foreign = []
            page.on("request", lambda request: foreign.append(request.url) if not request.url.startswith(URL) else None)

            # No token yet: the page loads, the document is refused (401),
            # and the page says what to do.
            page.goto(f"{URL}/docs/")
            expect(page.locator("#recwal-token-state")).to_have_text("This server needs a token: type it above.")
            page.screenshot(path=str(SHOTS / "docs-no-token.png"))

            # The token: the document loads, every operation is listed, and
            # Authorize holds it.
            page.fill("#recwal-token-value", TOKEN)
            errors.clear()
            with page.expect_navigation():
                page.click("#recwal-token button")
            expect(page.locator(".opblock")).to_have_count(operation_count(), timeout=30_000)
            expect(page.locator("button.btn.authorize.locked")).to_be_visible()
            document_fetches = [auth for url, auth in calls if url == f"{URL}/openapi.json"]
            self.assertEqual(document_fetches[-1], f"Bearer {TOKEN}")

            # Try it out: GET /admin/stats carries the token and answers 200.
            operation = page.locator("#operations-admin-stats")
            operation.locator(".opblock-summary").click()
            operation.locator("button.try-out__btn").click()
            calls.clear()
            operation.locator("button.execute").click()
            status = operation.locator(".live-responses-table .response .response-col_status").first
            expect(status).to_have_text("200", timeout=15_000)
            stats_calls = [auth for url, auth in calls if url == f"{URL}/admin/stats"]
            self.assertEqual(stats_calls, [f"Bearer {TOKEN}"])
            page.screenshot(path=str(SHOTS / "docs-try-it-out.png"), full_page=False)
            self.assertEqual(errors, [], "console errors with the token")

            # Logged out in Authorize: the next call goes without the token
            # and is refused.
            page.click("button.btn.authorize")
            page.locator(".modal-ux button", has_text="Logout").click()
            page.locator(".modal-ux button.close-modal").click()
            calls.clear()
            operation.locator("button.execute").click()
            expect(status).to_have_text("401", timeout=15_000)
            stats_calls = [auth for url, auth in calls if url == f"{URL}/admin/stats"]
            self.assertEqual(stats_calls, [None])

            self.assertEqual(foreign, [], "the page loaded something from elsewhere")
            browser.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
