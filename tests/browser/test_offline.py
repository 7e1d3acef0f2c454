"""Offline with an empty data folder: every page, opened in Chromium at 1400x900, says that MNIST is not on disk
before any button is pressed, and every button that would train is off."""
import time

from tests.browser.conftest import page_urls

TRAINING_BUTTONS = ("Start", "Train twins", "Run the sweep", "Run the experiment", "Quick-train a model",
                    "Run grid and random search", "Train both")


def test_offline_message_on_every_page(offline_server, browser_page, screenshots):
    page = browser_page
    page.goto(offline_server)
    pages = page_urls(page, offline_server)
    assert len(pages) >= 6
    for title, url in pages:
        page.goto(url)
        page.locator("h1").first.wait_for(timeout=60_000)
        page.get_by_text("MNIST is not on disk").first.wait_for(timeout=30_000)  # in view, with no click
        for name in TRAINING_BUTTONS:
            buttons = page.get_by_role("button", name=name, exact=True)
            for i in range(buttons.count()):
                if buttons.nth(i).is_visible():
                    assert buttons.nth(i).is_disabled(), (title, name)
        time.sleep(1)
        page.screenshot(path=str(screenshots / f"offline-{title}.png"))
