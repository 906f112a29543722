"""Driving the playground page in headless Chromium (Selenium): starting the browser and reading the page."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
needs_chromium = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER), reason="needs Debian's chromium and chromium-driver (`make test` installs them)"
)


@contextmanager
def headless_chromium(profile: Path) -> Iterator[WebDriver]:
    """A headless Chromium with its profile in `profile`, quit on leaving."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def type_into(driver: WebDriver, element_id: str, text: str) -> None:
    """Type `text` into the element and press Enter."""
    box = driver.find_element(By.ID, element_id)
    box.send_keys(text)
    box.send_keys(Keys.ENTER)


def texts(driver: WebDriver, selector: str) -> list[str]:
    """The visible text of every element matching `selector`, read at once (the page redraws as news arrives)."""
    found: list[str] = driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map((e) => e.innerText)", selector
    )
    return found


def click(driver: WebDriver, selector: str) -> None:
    """Click the first element matching `selector`."""
    driver.execute_script("document.querySelector(arguments[0]).click()", selector)
