"""The page at / in a real headless Chromium (Debian's chromium and chromium-driver, driven by Selenium): type a
message, submit, and read the highlighted entities, their labels and colours; a screenshot is kept.

The screenshot goes to $PYTEST_ARTIFACTS when set, else to the test's tmp_path (the path is printed)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import pytest
from test_serve import BATCHING, HEAD, LIMITS, MESSAGE, served, warm_tagger

from serving.app import create_app

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def rgb(colour: str) -> str:
    """``#7aecec`` as Selenium reads a computed colour: ``rgba(122, 236, 236, 1)``."""
    red, green, blue = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red}, {green}, {blue}, 1)"


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium; fails (not skips) without Debian's packages, which .ci/run installs."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
    if missing:
        pytest.fail(f"{' and '.join(missing)} missing: apt-get install chromium chromium-driver (.ci/run does)")
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not try to download a driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,800"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def page_url(repro_project):
    tagger = warm_tagger(str(repro_project[0] / HEAD))
    with served(create_app(tagger, HEAD, LIMITS, BATCHING)) as url:
        yield url


def artefact_dir(tmp_path: Path) -> Path:
    directory = Path(os.environ.get("PYTEST_ARTIFACTS") or tmp_path)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def submit(browser, text: str, count: int) -> None:
    """Type ``text`` into the message box, press Tag, wait for the page's ``count``-th answer."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    box = browser.find_element(By.ID, "text")
    box.clear()
    box.send_keys(text)
    browser.find_element(By.ID, "submit").click()
    WebDriverWait(browser, 20).until(
        lambda b: (
            b.find_element(By.TAG_NAME, "body").get_attribute("data-tagged") == str(count)
            or b.find_element(By.ID, "error").is_displayed()
        )
    )


def shown_text(browser) -> str:
    """The result's text without the entity labels: the message as the page shows it."""
    return browser.execute_script(
        "const box = document.getElementById('result').cloneNode(true);"
        "box.querySelectorAll('.entity-label').forEach(l => l.remove()); return box.textContent;"
    )


def test_the_page_highlights_the_entities_with_their_labels_and_colours(browser, page_url, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    info = httpx.get(f"{page_url}/info").json()
    expected = httpx.post(f"{page_url}/tag", json={"text": MESSAGE}).json()["entities"]
    assert expected, "the e2e head finds no entity in the message: nothing to look for on the page"
    browser.get(page_url + "/")
    WebDriverWait(browser, 20).until(lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
    legend = browser.find_elements(By.CSS_SELECTOR, "#legend .legend-item")
    assert [item.text for item in legend] == [c for c in info["categories"] if c != "O"]
    assert [item.value_of_css_property("background-color") for item in legend] == [
        rgb(info["colours"][item.text]) for item in legend
    ]

    submit(browser, MESSAGE, 1)
    assert not browser.find_element(By.ID, "error").is_displayed()
    marks = browser.find_elements(By.CSS_SELECTOR, "#result mark.entity")
    assert [mark.get_attribute("data-category") for mark in marks] == [e["entity_group"] for e in expected]
    for mark, entity in zip(marks, expected):
        label = mark.find_element(By.CSS_SELECTOR, ".entity-label").text
        assert label == entity["entity_group"]
        assert mark.text.removesuffix(label).strip() == entity["word"]
        assert mark.value_of_css_property("background-color") == rgb(info["colours"][entity["entity_group"]])
    assert shown_text(browser) == MESSAGE  # the text around and in the marks is the message's own
    rows = browser.find_elements(By.CSS_SELECTOR, "#words tbody tr")
    assert len(rows) == len(expected_words := httpx.post(f"{page_url}/tag", json={"text": MESSAGE}).json()["words"])
    assert [row.find_elements(By.TAG_NAME, "td")[0].get_attribute("textContent") for row in rows] == expected_words
    # Everything the page loaded came from this server: nothing from a CDN.
    loaded = browser.execute_script("return performance.getEntriesByType('resource').map(r => r.name)")
    assert loaded and all(name.startswith(page_url) for name in loaded), loaded

    screenshot = artefact_dir(tmp_path) / "serve_page.png"
    assert browser.save_screenshot(str(screenshot)) and screenshot.stat().st_size > 10_000
    print(f"screenshot: {screenshot}")


def test_the_page_shows_markup_as_text_and_errors_from_the_server(browser, page_url):
    from selenium.webdriver.common.by import By

    browser.get(page_url + "/")
    hostile = '<img src=x onerror="document.title=1"> Porto'
    submit(browser, hostile, 1)
    result = browser.find_element(By.ID, "result")
    assert result.find_elements(By.TAG_NAME, "img") == []  # shown, never parsed as HTML
    assert shown_text(browser) == hostile and browser.title == "ssner tagger"

    submit(browser, "   ", 2)
    error = browser.find_element(By.ID, "error")
    assert error.is_displayed() and "holds only whitespace" in error.text
