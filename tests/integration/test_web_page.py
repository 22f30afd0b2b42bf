"""Issue 15 §2: the web page of applies in a real browser (Debian's headless Chromium driven by
Selenium through chromium-driver), against a real `schemabot serve`, a real prefork worker and
Redis, and a real copy: the spirit engine altering a MariaDB table of 100,000 rows (gently, so
the copy lasts long enough to watch).

The test signs in with an apply-scope token, opens the list, then the apply's page during the
copy, takes a screenshot, and checks that the progress shown moves; at waiting_for_cutover it
presses the cutover button (confirming the dialog) and sees the apply complete. A read-scope
token sees no buttons and may not press one; without a token the pages send you to sign in.

Needs `apt-get install chromium chromium-driver` (make browser); skipped with that reason
otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from schemabot.auth import hash_secret, new_secret
from tests.support.mariadb import connect, fresh_schema, mysql_dsn
from tests.support.proc_env import PROC_TIMINGS
from tests.support.processes import Cluster
from tests.support.serve import served
from tests.support.servers import wait_for

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install .[dev])")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(180),
    pytest.mark.skipif(
        not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
        reason="needs Debian's chromium and chromium-driver: `make browser` (apt-get install them)",
    ),
]


def browser() -> Any:
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


def test_the_apply_page_shows_a_real_copy_moving_and_its_cutover_button_works(tmp_path: Path) -> None:

    operator, reader = new_secret(), new_secret()
    tokens = [
        {"name": "operator", "sha256": hash_secret(operator), "scope": "apply"},
        {"name": "viewer", "sha256": hash_secret(reader), "scope": "read"},
    ]
    with fresh_schema("sbt_web") as schema:
        conn = connect(schema)
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE orders (id INT PRIMARY KEY, a INT NOT NULL, b VARCHAR(40))")
            cur.execute("INSERT INTO orders SELECT seq, seq * 7, CONCAT('row-', seq) FROM seq_1_to_100000")
        conn.close()
        extra = {
            **PROC_TIMINGS,
            "SCHEMABOT_API_TOKENS": json.dumps(tokens),
            "SCHEMABOT_TARGET_SHOP": mysql_dsn(schema),
        }
        _watch_in_a_browser(tmp_path, extra, operator, reader, schema)


def _watch_in_a_browser(
    tmp_path: Path, extra: dict[str, str], operator: str, reader: str, schema: str
) -> None:
    from selenium.webdriver.common.by import By

    with served(tmp_path, extra) as server:
        cluster = Cluster(server.env, tmp_path)
        driver = None
        try:
            cluster.worker()
            # Without a token: sent to sign in.
            anonymous = httpx.get(f"{server.base_url}/ui/applies", timeout=10)
            assert anonymous.status_code == 303 and anonymous.headers["location"] == "/ui/login"

            submitted = server.client(operator).post(
                "/v1/applies",
                json={
                    "target": "shop",
                    "engine": "spirit",
                    "defer_cutover": True,
                    "volume": 1,
                    "engine_options": {"chunk_rows": 200},
                    "changes": [
                        {"namespace": schema, "ddl": ["ALTER TABLE orders ADD COLUMN note INT NULL"]}
                    ],
                },
            )
            assert submitted.status_code == 201, submitted.text
            apply_id = submitted.json()["apply_id"]

            driver = browser()
            driver.get(f"{server.base_url}/ui/login")
            driver.find_element(By.CSS_SELECTOR, "#login input").send_keys(operator)
            driver.find_element(By.CSS_SELECTOR, "#login button").click()
            wait_for(lambda: driver.current_url.endswith("/ui/applies"), 20, "the list after sign-in")
            link = driver.find_element(By.LINK_TEXT, apply_id)
            link.click()
            wait_for(lambda: apply_id in driver.title, 20, "the apply's page")

            def shown() -> tuple[float, str]:
                row = driver.find_element(By.CSS_SELECTOR, "#task-rows tr")
                pct = float(row.find_element(By.CSS_SELECTOR, ".pct").text.rstrip("%"))
                return pct, row.find_element(By.CSS_SELECTOR, ".phase").text

            seen: list[float] = []

            def copying_moves() -> bool:
                pct, phase = shown()
                if phase == "copy" and 0 < pct < 100 and (not seen or pct != seen[-1]):
                    seen.append(pct)
                return len(seen) >= 2

            wait_for(copying_moves, 60, "the page's progress to move during the copy", interval=0.2)
            screenshot = tmp_path / "apply-page-during-copy.png"
            assert driver.save_screenshot(str(screenshot))
            assert screenshot.stat().st_size > 10_000
            assert seen[1] > seen[0]
            rate = driver.find_element(By.CSS_SELECTOR, "#task-rows tr .rate").text
            assert rate == "—" or rate.endswith("rows/s")
            artifacts = os.environ.get("TEST_SCREENSHOT_DIR")
            if artifacts:
                shutil.copy(screenshot, Path(artifacts) / screenshot.name)

            # At waiting_for_cutover the page names the next command and offers the button.
            wait_for(
                lambda: "waiting for cutover" in driver.find_element(By.ID, "headline").text,
                60,
                "waiting for cutover on the page",
            )
            assert f"schemabot cutover {apply_id}" in driver.find_element(By.ID, "headline").text

            # A read token sees no buttons and may not press one.
            as_reader = server.client(reader)
            assert 'data-control="' not in as_reader.get(f"/ui/applies/{apply_id}").text
            refused = as_reader.post(
                f"/ui/applies/{apply_id}/control/cutover", headers={"X-Schemabot-UI": "1"}, json={}
            )
            assert refused.status_code == 403

            wait_for(
                lambda: bool(driver.find_elements(By.ID, "control-cutover")),
                20,
                "the cutover button",
            )
            driver.find_element(By.ID, "control-cutover").click()
            alert = driver.switch_to.alert
            assert apply_id in alert.text
            alert.accept()
            wait_for(
                lambda: "completed" in driver.find_element(By.ID, "headline").text,
                60,
                "the apply to complete after the button",
            )
            log = driver.find_element(By.ID, "log-rows").text
            assert "cutover requested by operator" in log or "cutover" in log
        except BaseException:
            print(cluster.logs(), server.log()[-3000:])
            raise
        finally:
            if driver is not None:
                driver.quit()
            cluster.stop()
