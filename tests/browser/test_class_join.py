"""Class mode in Chromium: a lesson link opened by a learner who has not joined yet."""
import re

import pytest

from tests.browser.conftest import _need_chromium, serve

TEACHER = "browser-teacher-key"


@pytest.fixture(scope="module")
def class_server(tmp_path_factory, data_dir):
    _need_chromium()
    with serve(tmp_path_factory, RUNS_DIR=str(tmp_path_factory.mktemp("runs")), DATA_DIR=data_dir,
               TEACHER_KEY=TEACHER) as url:
        yield url


def test_a_lesson_link_keeps_its_page_and_settings_through_the_join_form(class_server, browser_page):
    """A learner opens a lesson link to the Train page, chooses a name, and lands on the Train page with the link's
    settings in its widgets. Catches the join form's rerun going to Home (the form ran before st.navigation, so the
    session's page was app.py itself, which no page matches) with the settings left unused in the address."""
    page = browser_page
    page.goto(f"{class_server}/runs?teacher={TEACHER}")  # a server already in use: its first session is special
    page.get_by_role("heading", name="Runs", exact=False).first.wait_for(timeout=120_000)
    for name, batches in (("Ada", 7), ("Grace", 9)):
        page.goto(f"{class_server}/train?epochs=1&max_batches={batches}")
        page.get_by_label("Display name").fill(name)
        page.get_by_role("button", name="Join").click()
        page.get_by_role("heading", name="Train a network").wait_for(timeout=60_000)
        assert re.search(r"/train\?(.*&)?learner=", page.url), page.url
        assert page.get_by_role("spinbutton", name="Epochs").input_value() == "1"
        assert page.get_by_role("spinbutton", name="Batches per epoch (0 = all)").input_value() == str(batches)
    page.goto(class_server)  # the server's address alone: the learner joins on Home and stays there
    page.get_by_label("Display name").fill("Hedy")
    page.get_by_role("button", name="Join").click()
    page.get_by_role("heading", name="Learn deep learning", exact=False).wait_for(timeout=60_000)
    page.get_by_role("link", name="Train").first.click()
    page.get_by_role("heading", name="Train a network").wait_for(timeout=60_000)
    assert "learner=" in page.url and not page.get_by_label("Display name").count()
