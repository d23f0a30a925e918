"""The dashboard in a real browser (Debian's chromium driven by Playwright) against a real
`newsflow serve`, real workers and Redis. Each page is saved as a screenshot under
screenshots/ (ignored by git): look at them after a change to the pages."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT, TOKEN, Server, Stack, missing, serving
from tests.test_bad_input import SCRIPTS_ONLY

pytestmark = pytest.mark.integration
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = ROOT / "screenshots"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HOSTILE = "<script>alert(1)</script>"

ARTICLES = [
    {"id": "d-1", "title": "Ferry service resumes", "text": (
        "VALMERA, May 4 (Reuters) - Ferry service between Valmera and the island of Osk "
        "resumed on Monday after storms kept boats in port for five days, the operator "
        "Northline said.\n\nNorthline chief executive Ada Brenner said about 3,000 "
        "passengers had been stranded. Brenner said the company would add two sailings a "
        "day until the backlog cleared.\n\nValmera port officials said the harbour would stay "
        "open through the night.")},
    {"id": "d-hostile", "title": HOSTILE, "text": (
        "The council of Brookfield met on Tuesday. Mayor Hannah Cole said the <b>budget</b> "
        "would pass. Cole said the vote would be held in June.")},
    {"id": "d-broken", "html": SCRIPTS_ONLY},
    *({"id": f"d-wire-{i}", "text": (
        f"Wire item {i}: the regional council of Osk approved plan {i} on Tuesday, "
        f"council leader Marta Kowalski said. Kowalski said work would start in {2027 + i}.")}
      for i in range(30)),
]  # fmt: skip


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        missing(f"playwright is not installed: {exc}")
    if not Path(CHROMIUM).exists():
        missing(f"no chromium at {CHROMIUM}: apt-get install -y chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def server(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving(stack.settings, tmp_path_factory.mktemp("serve") / "serve.log") as running:
        yield running


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    opened = context.new_page()
    dialogs: list[str] = []
    opened.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    context.close()
    assert dialogs == [], f"a page opened a dialog: {dialogs}"
    assert errors == [], f"a page's script failed: {errors}"


def shot(page: Any, name: str, stack: Stack) -> None:
    SHOTS.mkdir(exist_ok=True)
    kind = "postgres" if stack.settings.database_url.startswith("postgres") else "sqlite"
    page.screenshot(path=str(SHOTS / f"{name}-{kind}.png"), full_page=True)


def test_the_dashboard_follows_a_batch_and_shows_its_articles(
    server: Server, stack: Stack, page: Any
) -> None:
    stack.stop_worker()  # the batch waits until the page is open, so the bar must move live
    sent = httpx.post(f"{server.url}/batches", params={"name": "dashboard"}, json=ARTICLES,
                      headers=AUTH)  # fmt: skip
    assert sent.status_code == 201, sent.text
    batch_id = sent.json()["batch_id"]

    page.goto(f"{server.url}/")
    widget = page.locator(f".progress[data-batch='{batch_id}']")
    assert widget.locator(".pct").inner_text() == "0%"
    shot(page, "overview-waiting", stack)
    stack.start_worker()
    widget.locator(".pct", has_text="100%").wait_for(timeout=240_000)
    bar = widget.locator("progress")
    assert bar.evaluate("b => b.value") == bar.evaluate("b => b.max") == len(ARTICLES)
    page.reload()  # the failure list is rendered by the server
    assert page.locator("table.failures").inner_text().count("no article text found") >= 1
    shot(page, "overview", stack)

    page.goto(f"{server.url}/view/batches/{batch_id}")
    first_row = page.locator("table.rows tbody tr").first
    assert "failed" in first_row.inner_text(), "failures come first"
    assert page.locator("table.rows tbody tr").count() == len(ARTICLES)
    shot(page, "batch", stack)
    page.select_option("select[name=status]", "failed")
    page.click("form.filter button")
    assert page.locator("table.rows tbody tr").count() == 1

    rows = httpx.get(f"{server.url}/articles", params={"batch": batch_id, "limit": 500}).json()
    ids = {r["title"]: r["id"] for r in rows["items"]}
    reuters = httpx.get(f"{server.url}/articles/{ids['Ferry service resumes']}").json()
    page.goto(f"{server.url}/view/articles/{reuters['id']}")
    mentions = page.locator(".text [data-mention]")
    shown = {mentions.nth(i).get_attribute("data-mention") for i in range(mentions.count())}
    assert len(shown) == sum(len(e["mentions"]) for e in reuters["entities"]) > 0
    marked = page.locator(".text mark.summary")
    assert marked.count() == len(reuters["summary"]["sentences"]) > 0
    assert page.locator(".text").inner_text().strip() == reuters["text"].strip()
    shot(page, "article", stack)

    page.goto(f"{server.url}/view/articles/{ids[HOSTILE]}")
    assert page.locator("h1").inner_text() == HOSTILE  # shown as text, never run
    assert page.locator(".text b").count() == 0 and page.locator("main script").count() == 0
    shot(page, "article-hostile-title", stack)

    page.goto(f"{server.url}/view/entities?batch={batch_id}")
    link = page.locator("table a", has_text="Marta Kowalski")
    assert link.count() == 1
    shot(page, "entities", stack)
    link.click()
    assert page.locator("table.rows tbody tr").count() == 30


def test_the_search_box_finds_articles_and_marks_where(
    server: Server, stack: Stack, page: Any
) -> None:
    text = (
        "OSK, June 2 (Reuters) - The lighthouse keepers of Osk counted 412 puffins on the "
        "north cliffs this spring, twice last year's number, the island trust said.\n\n"
        "Trust warden Ilse Marr said the colony had recovered since rats were cleared."
    )
    story = {"id": "d-puffins", "title": "Puffin count", "text": text}
    sent = httpx.post(f"{server.url}/batches", json=[story], headers=AUTH)
    assert sent.status_code == 201, sent.text
    stack.wait(sent.json()["batch_id"])

    page.goto(f"{server.url}/")
    page.fill("form.search input[name=q]", "puffin colony")
    page.press("form.search input[name=q]", "Enter")
    page.wait_for_url("**/view/articles?q=*")
    rows = page.locator("table.rows tbody tr")
    assert rows.count() == 1 and "Puffin count" in rows.first.inner_text()
    marks = rows.first.locator(".snippet mark")
    assert marks.count() >= 1
    assert {marks.nth(i).inner_text().lower()[:6] for i in range(marks.count())} <= {
        "puffin", "colony"
    }  # fmt: skip
    shot(page, "search", stack)
    page.fill("form.search input[name=q]", HOSTILE)
    page.press("form.search input[name=q]", "Enter")
    page.wait_for_load_state()
    assert HOSTILE in page.locator("h1").inner_text()  # text, never run (no dialog opened)


def test_a_syndicated_story_shows_its_copies_side_by_side(
    server: Server, stack: Stack, page: Any
) -> None:
    body = (
        "The river authority of Lunden said on Friday that it would raise the flood walls "
        "along the old town quay by half a metre before the autumn storms.\n\n"
        "Work on the 2.4 km stretch will start in June and cost about 18 million crowns, "
        "the authority's engineer Petra Valk told a meeting of shop owners.\n\n"
        "Shop owners said they welcomed the plan but asked that the quay stay open to "
        "delivery vans while the work goes on, which the authority said it would try to do."
    )
    copies = [
        {"id": "s-wire", "title": "Lunden to raise flood walls", "source": "Nordwire",
         "published": "2026-03-06", "text": body},
        {"id": "s-site", "title": "Flood walls to rise on the quay", "source": "Lunden Post",
         "published": "2026-03-06", "text": "LUNDEN, March 6 (Nordwire) - " + body},
        {"id": "s-cut", "title": "Higher flood walls", "source": "Valley Courier",
         "published": "2026-03-07", "text": body.rsplit("\n\n", 1)[0]},
    ]  # fmt: skip
    sent = httpx.post(f"{server.url}/batches", json=copies, headers=AUTH)
    assert sent.status_code == 201, sent.text
    batch_id = sent.json()["batch_id"]
    stack.wait(batch_id)

    page.goto(f"{server.url}/view/stories?batch={batch_id}")
    rows = page.locator("table tbody tr")
    assert rows.count() == 1 and "Lunden to raise flood walls" in rows.first.inner_text()
    shot(page, "stories", stack)
    rows.first.locator("a").first.click()
    page.wait_for_url("**/view/stories/*")
    copies_table = page.locator("table.copies tbody tr")
    assert copies_table.count() == len(copies)
    assert page.locator("table.copies tr.first").count() == 1
    listed = page.locator("table.copies").inner_text()
    assert all(name in listed for name in ("Nordwire", "Lunden Post", "Valley Courier"))
    assert page.locator(".side-by-side .copy").count() == len(copies)
    shot(page, "story", stack)
    story_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    served = httpx.get(f"{server.url}/stories/{story_id}").json()
    assert sorted(c["source"] for c in served["copies"]) == sorted(c["source"] for c in copies)
    page.locator("table.copies tbody tr a").first.click()
    assert page.locator(f"aside a[href='/view/stories/{story_id}']").count() == 1
    metrics = httpx.get(f"{server.url}/metrics").text
    gauge = next(line for line in metrics.splitlines() if line.startswith("newsflow_stories "))
    assert float(gauge.split()[1]) >= 1


def test_requeue_works_with_the_token_and_is_refused_without(
    server: Server, stack: Stack, page: Any
) -> None:
    page.goto(f"{server.url}/")
    button = page.locator("button.requeue").first
    button.click()
    notice = page.locator("#notice")
    notice.wait_for()
    assert "Requeue refused" in notice.inner_text() and "API token" in notice.inner_text()
    page.fill("#token", TOKEN)
    page.dispatch_event("#token", "change")
    button.click()
    page.locator("#notice", has_text="Requeued batch").wait_for()
    assert "1 clean" in notice.inner_text()  # the failed article, sent again
    shot(page, "overview-requeued", stack)


def test_the_pages_read_without_javascript(server: Server, browser: Any, stack: Stack) -> None:
    for batch in httpx.get(f"{server.url}/batches").json():  # the requeued article included
        stack.wait(batch["id"])
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{server.url}/")
    bar = page.locator(".progress progress").first
    assert bar.get_attribute("value") == bar.get_attribute("max")
    page.locator("table.batches a").first.click()
    assert page.locator("table.rows tbody tr").count() > 0
    context.close()
