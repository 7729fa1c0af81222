"""Browser tests: Debian's Chromium driven by Playwright against the app as `make run` serves it
in production shape (daphne, websockets, the in-process worker), on the test database."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.servers import ROOT, daphne

CHROMIUM = os.environ.get("PROMPTLOOPER_CHROMIUM", "/usr/bin/chromium")
# This machine's network is closed: without these, Chromium keeps trying to reach Google.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]  # fmt: skip
SCREENSHOTS = ROOT / "test-output"
LOAD_FAILED = "Failed to load resource"


@pytest.fixture(scope="package")
def browser(django_db_setup) -> Iterator[Browser]:
    # Playwright's sync API keeps an event loop running in this thread, so Django would take
    # every ORM call of these tests (fixtures, flushes) for one made from async code. They are
    # plain sync calls: allow them, for this package only (its fixtures outlive every test's).
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def app(transactional_db, mock_latency) -> Iterator[str]:
    """The base URL of a daphne serving the app on this test's database."""
    with daphne() as host:
        yield f"http://{host}"


class ConsoleErrors(list):
    def check(self) -> None:
        assert not self, f"errors in the browser console: {list(self)}"


@pytest.fixture
def console_errors() -> ConsoleErrors:
    return ConsoleErrors()


@pytest.fixture
def page(browser: Browser, app: str, console_errors: ConsoleErrors) -> Iterator[Page]:
    context = browser.new_context(base_url=app, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.on("pageerror", lambda error: console_errors.append(str(error)))
    page.on("console", lambda message: message.type == "error" and not message.text.startswith(LOAD_FAILED)
            and console_errors.append(message.text))  # fmt: skip
    # A failed load is reported with its URL instead; pages a test opens on purpose may be 404s.
    page.on("response", lambda response: response.status >= 400 and response.request.resource_type != "document"
            and console_errors.append(f"{response.status} {response.url}"))  # fmt: skip
    yield page
    context.close()
    console_errors.check()


def log_in(page: Page, username: str, password: str) -> None:
    page.goto("/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: "/login/" not in url)


def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
