"""The local review page in a real headless Chromium against the real stack.

A reviewer opens the queue, opens a job, plays the preview, sees the spectrogram, annotates and
approves; a forged post and a decision on a finished job are refused and change nothing.
"""

from __future__ import annotations

import shutil
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from activities.review import store as review_db
from infra.db import Database
from infra.settings import Settings
from schemas.jobs import Stage
from tests.integration.helpers import short_request, wait_for_stage
from tunesmith import Client
from tunesmith.review_page import ReviewPage, make_server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture
def page_url(settings: Settings) -> Iterator[tuple[str, ReviewPage]]:
    page = ReviewPage(settings, reviewer="pat")
    server = make_server(page, 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", page
    finally:
        server.shutdown()
        server.server_close()
        page.close()


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    # `make test` installs Debian's chromium + chromedriver; without them this fails loudly.
    assert CHROMIUM and CHROMEDRIVER, "chromium and chromedriver are needed (apt: chromium-driver)"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--autoplay-policy=no-user-gesture-required"):  # fmt: skip
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _post(url: str, fields: dict[str, str]) -> int:
    data = urllib.parse.urlencode(fields).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=30) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return exc.code


async def test_reviewer_listens_looks_annotates_and_approves_in_a_browser(
    client: Client, db: Database, page_url: tuple[str, ReviewPage], browser: webdriver.Chrome
) -> None:
    base, _ = page_url
    handle = await client.submit(short_request(review="required", seed=51, duration_s=6.0))
    await wait_for_stage(handle, Stage.AWAITING_REVIEW)
    wait = WebDriverWait(browser, 30)

    browser.get(base + "/")
    browser.find_element(By.LINK_TEXT, handle.job_id).click()
    wait.until(expected_conditions.presence_of_element_located((By.ID, "player")))
    assert browser.find_element(By.ID, "stage").text == "awaiting_review"
    # The preview really loads and plays; the spectrogram PNG really renders.
    duration = wait.until(
        lambda d: d.execute_script(
            "const a = document.getElementById('player');"
            "return a.readyState >= 1 && a.duration > 0 ? a.duration : null;"
        )
    )
    assert 2.0 < float(duration) < 30.0
    browser.execute_script("document.getElementById('player').play()")
    playing = "return document.getElementById('player').currentTime"
    wait.until(lambda d: d.execute_script(playing) > 0)
    assert browser.execute_script("return document.getElementById('overview').naturalWidth") > 100

    # A forged post (no token) is refused and changes nothing.
    forged = _post(f"{base}/jobs/{handle.job_id}/decision",
                   {"reviewer": "mallory", "decision": "approve"})  # fmt: skip
    assert forged == 403
    assert (await handle.status()).stage is Stage.AWAITING_REVIEW

    annotate = browser.find_element(By.ID, "annotate")
    annotate.find_element(By.NAME, "tags").send_keys("warm,short-intro")
    annotate.find_element(By.NAME, "rating").send_keys("4")
    annotate.find_element(By.NAME, "post_edit").click()
    browser.find_element(By.ID, "save-annotation").click()
    wait.until(expected_conditions.text_to_be_present_in_element((By.ID, "message"), "saved"))

    decide = browser.find_element(By.ID, "decide")
    decide.find_element(By.NAME, "note").send_keys("sounds right")
    browser.find_element(By.ID, "approve").click()
    wait.until(expected_conditions.text_to_be_present_in_element((By.ID, "message"), "approve"))
    result = await handle.result()
    assert result.stage is Stage.PUBLISHED and result.review and result.review.reviewer == "pat"

    annotations = await review_db.list_annotations(db, handle.job_id)
    assert [(a["reviewer"], a["rating"], a["post_edit"]) for a in annotations] == [("pat", 4, True)]
    assert sorted(annotations[0]["tags"]) == ["short-intro", "warm"]

    # Deciding again on the published job is refused on the page, and audited.
    browser.get(f"{base}/jobs/{handle.job_id}")
    browser.find_element(By.ID, "reject").click()
    wait.until(expected_conditions.text_to_be_present_in_element((By.ID, "message"), "refused"))
    assert "not awaiting review" in browser.find_element(By.ID, "message").text
    assert (await handle.status()).stage is Stage.PUBLISHED
    audit = await review_db.audit_log(db, handle.job_id)
    assert any(a["reviewer"] == "pat" and not a["accepted"] for a in audit)


def test_unknown_job_is_a_404(page_url: tuple[str, ReviewPage]) -> None:
    base, _ = page_url
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(f"{base}/jobs/no-such-job", timeout=30)
    assert exc.value.code == 404
