"""The search page in a real headless Chromium (Debian's chromium + chromium-driver, driven by selenium).

The browser is installed by this fixture when absent (apt-get, as root); the test is skipped, saying
why, only where no Chromium package can be installed. Screenshots go to the test's temporary folder,
or to ``$CMHASH_SCREENSHOTS`` when set: ``CMHASH_SCREENSHOTS=docs/img`` refreshes the ones linked from
docs/retrieval.md (a plain test run leaves the committed pictures alone).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from cmhash.service import PgLocation, PgStore, Retriever, build_index
from cmhash.service.app import create_app

BROWSER_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1200,900")


def ensure_chromium() -> tuple[str, str]:
    """Paths of chromium and chromedriver, installing Debian's packages when they are missing."""
    def found():
        return shutil.which("chromium"), shutil.which("chromedriver")
    if not all(found()) and shutil.which("apt-get") and os.geteuid() == 0:
        subprocess.run("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
                       "chromium chromium-driver", shell=True, capture_output=True, timeout=900)
    browser, driver = found()
    if not (browser and driver):
        pytest.skip("no Chromium: install Debian's chromium and chromium-driver packages (apt-get needs root, "
                    "and found none here)")
    return browser, driver


@pytest.fixture(scope="module", params=["file", "pg"])
def server(request, corpus):
    """The app (file index or PostgreSQL store, tiny CLIP, thumbnails) under uvicorn on a free loopback port."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    where = corpus.index
    if request.param == "pg":
        where = PgLocation(dsn=request.getfixturevalue("pg_server").get_uri(), table="web_page")
        build_index(corpus.model, corpus.dataset, modalities=("image", "text"), pg=where,
                    manifest=corpus.root / "manifest.csv").close()
    retriever = Retriever.open(corpus.model, where, checkpoint=corpus.clip)
    config = uvicorn.Config(create_app(retriever, image_root=corpus.images), host="127.0.0.1", port=port,
                            log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield request.param, f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)
    retriever.close()
    if request.param == "pg":
        PgStore.drop(where, 16, "unused")


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = ensure_chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    profile = tempfile.mkdtemp(prefix="cmhash-chromium-")
    for flag in BROWSER_FLAGS + (f"--user-data-dir={profile}",):
        options.add_argument(flag)
    chrome = webdriver.Chrome(service=Service(driver), options=options)
    chrome.set_page_load_timeout(30)
    yield chrome
    chrome.quit()
    shutil.rmtree(profile, ignore_errors=True)


def results(chrome, wait_for: str):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(chrome, 20).until(ec.text_to_be_present_in_element((By.ID, "status"), wait_for))
    cards = chrome.find_elements(By.CSS_SELECTOR, "#results .card")
    return [{"id": int(c.get_attribute("data-id")),
             "caption": c.find_element(By.CLASS_NAME, "caption").text,
             "chips": [x.text for x in c.find_elements(By.CLASS_NAME, "chip")],
             "distance": c.find_element(By.CLASS_NAME, "distance").text,
             "image_loaded": chrome.execute_script(
                 "const i = arguments[0].querySelector('img'); return !!i && i.complete && i.naturalWidth > 0", c)}
            for c in cards]


def test_text_query_upload_and_more_like_this(server, browser, corpus, tmp_path):
    """The three ways to search, over the file index and the PostgreSQL store."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    store, url = server
    # The page looks the same over both stores: the file store's pictures are the documented ones.
    shots = Path(os.environ.get("CMHASH_SCREENSHOTS") or tmp_path) if store == "file" else tmp_path
    shots.mkdir(parents=True, exist_ok=True)
    browser.get(url + "/")
    WebDriverWait(browser, 20).until(ec.text_to_be_present_in_element((By.ID, "info"), "scm, 16 bits"))
    assert f"{store} index of 112 entries (image+text)" in browser.find_element(By.ID, "info").text

    browser.find_element(By.ID, "text-query").send_keys("a red square")
    browser.find_element(By.ID, "text-search").click()
    shown = results(browser, "results for “a red square”")
    assert len(shown) == 12 and all(h["image_loaded"] for h in shown)
    assert all(h["distance"].startswith("Hamming ") for h in shown)
    assert shown[0]["caption"] == "a red square" and shown[0]["chips"] == ["red", "square"]
    assert "ms (server)" in browser.find_element(By.ID, "status").text
    browser.save_screenshot(str(shots / "page-text-query.png"))

    browser.find_element(By.ID, "image-query").send_keys(str(corpus.images / "shapes" / "blue-circle-3.png"))
    browser.find_element(By.ID, "image-search").click()
    shown = results(browser, "results for blue-circle-3.png")
    assert len(shown) == 12 and shown[0]["chips"] == ["blue", "circle"]
    browser.save_screenshot(str(shots / "page-image-upload.png"))

    first = shown[0]["id"]
    browser.find_element(By.CSS_SELECTOR, "#results .card .more").click()
    shown = results(browser, f"results for item #{first}")
    assert len(shown) == 12 and shown[0]["id"] == first and shown[0]["distance"] == "Hamming 0"
    browser.save_screenshot(str(shots / "page-more-like-this.png"))
