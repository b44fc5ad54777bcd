"""A real browser (Debian's Chromium under Playwright) on the YASGUI page and an entity page.

Screenshots for people to look at: /tmp/namkg-yasgui.png, /tmp/namkg-yasgui-arabic.png,
/tmp/namkg-entity.png and /tmp/namkg-ontology.png.
"""

from __future__ import annotations

import os

import pytest

from tests.test_pages import CLAIM_AR, EXAMPLES, QUOTE_AR, QUOTE_EN, running_site

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
SHOTS = {"yasgui": "/tmp/namkg-yasgui.png", "entity": "/tmp/namkg-entity.png",
         "ontology": "/tmp/namkg-ontology.png", "yasgui-arabic": "/tmp/namkg-yasgui-arabic.png"}

pytestmark = pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK),
    reason=f"{CHROMIUM} is missing: apt-get install -y chromium (Playwright's own browser "
           "download is not used)")
sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with running_site(tmp_path_factory.mktemp("browser")) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser, site):
    """A fresh page that records every request leaving this server and every script error."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    pg = context.new_page()
    pg.set_default_timeout(20_000)
    pg.elsewhere, pg.errors = [], []
    pg.on("request",
          lambda req: req.url.startswith((site, "data:")) or pg.elsewhere.append(req.url))
    pg.on("pageerror", lambda exc: pg.errors.append(str(exc)))
    yield pg
    context.close()


def assert_stayed_home(page) -> None:
    assert page.elsewhere == [], "the page reached outside this server"
    assert page.errors == []


def tab_state(page) -> dict:
    return page.evaluate(
        "() => { const t = namkgYasgui.getTab();"
        " return {endpoint: t.getEndpoint(), query: t.getQuery()}; }")


def test_yasgui_runs_an_example_and_shows_rows(page, site):
    page.goto(site + "/")
    page.wait_for_selector(".yasqe .CodeMirror")
    state = tab_state(page)
    assert state == {"endpoint": site + "/sparql", "query": EXAMPLES[0]["query"]}

    page.locator(".examples .example", has_text=EXAMPLES[1]["name"]).click()
    page.locator(".examples .example", has_text=EXAMPLES[0]["name"]).click()
    cells = page.locator(".yasr table tbody tr td")
    cells.filter(has_text="membership-full").first.wait_for()
    assert tab_state(page)["query"] == EXAMPLES[0]["query"]
    assert page.locator(".yasr table tbody tr").count() == 1
    assert "quote-05" in page.locator(".yasr table tbody").inner_text()
    page.screenshot(path=SHOTS["yasgui"], full_page=True)

    # A result IRI of ours opens this server's page for it.
    with page.context.expect_page() as opened:
        page.locator(".yasr table tbody a", has_text="membership-full").click()
    entity = opened.value
    entity.wait_for_load_state()
    assert entity.url == site + "/id/membership-full"
    assert entity.locator("blockquote[lang=ar]", has_text=QUOTE_AR).count() >= 1
    assert_stayed_home(page)


def test_an_endpoint_typed_by_hand_does_not_survive_a_reload(page, site):
    page.goto(site + "/")
    page.wait_for_selector(".yasqe .CodeMirror")
    page.evaluate("() => { namkgYasgui.getTab().setEndpoint('http://elsewhere.invalid/sparql'); }")
    page.reload()
    page.wait_for_selector(".yasqe .CodeMirror")
    assert tab_state(page)["endpoint"] == site + "/sparql"
    # With a fragment namkg.js leaves the tab alone: only YASGUI's own config speaks.
    page.goto(site + "/#kept")
    page.wait_for_selector(".yasqe .CodeMirror")
    assert tab_state(page)["endpoint"] == site + "/sparql"
    assert not [k for k in page.evaluate("() => Object.keys(localStorage)") if "ya" in k.lower()]
    assert_stayed_home(page)


QUOTES_QUERY = """PREFIX oa: <http://www.w3.org/ns/oa#>
SELECT ?quote ?exact WHERE { ?quote oa:exact ?exact } ORDER BY ?quote"""
# Where the first word of a cell's text lies, against the cell's visible box; and which of its
# words a line break cuts (a word cut across lines has two client rects).
MEASURE = """text => {
  const span = [...document.querySelectorAll('.yasr td span')]
      .find(s => s.textContent.includes(text));
  const box = span.closest('td > div'), node = [...span.childNodes]
      .find(n => n.nodeType === Node.TEXT_NODE && n.textContent.includes(text));
  const start = node.textContent.indexOf(text), range = document.createRange();
  const cut = [];
  let at = start;
  for (const word of text.split(' ')) {
    range.setStart(node, at); range.setEnd(node, at + word.length);
    if (word.length > 1 && range.getClientRects().length > 1) cut.push(word);
    at += word.length + 1;
  }
  const first = text.split(' ')[0];
  range.setStart(node, start); range.setEnd(node, start + first.length);
  const w = range.getBoundingClientRect(), b = box.getBoundingClientRect();
  return {visible: w.left >= b.left - 1 && w.right <= b.right + 1, cut: cut,
          overflowing: box.scrollWidth > box.clientWidth,
          ellipsis: box.closest('table').classList.contains('ellipseTable')};
}"""


def test_arabic_result_cells_show_their_first_word(page, site):
    """YASR's table with "Ellipse" on cuts a long cell at its end: for an Arabic quote that end
    must be the text's end (left), so its first word shows; with "Ellipse" off, lines break
    between words, not inside them."""
    page.set_viewport_size({"width": 700, "height": 900})  # narrow: the quote overflows
    page.goto(site + "/")
    page.wait_for_selector(".yasqe .CodeMirror")
    page.evaluate("q => { const t = namkgYasgui.getTab(); t.setQuery(q); t.query(); }",
                  QUOTES_QUERY)
    page.locator(".yasr table tbody td", has_text="quote-05").first.wait_for()
    on = page.evaluate(MEASURE, QUOTE_AR)
    assert on["ellipsis"] and on["overflowing"], on  # the case that hid the beginning
    assert on["visible"], on
    page.locator(".yasr .tableControls label", has_text="Ellipse").click()
    page.wait_for_function("() => !document.querySelector('.yasr table.ellipseTable')")
    off = page.evaluate(MEASURE, QUOTE_AR)
    assert not off["ellipsis"] and off["visible"] and off["cut"] == [], off
    page.screenshot(path=SHOTS["yasgui-arabic"], full_page=True)
    assert_stayed_home(page)


def test_entity_page_shows_arabic_quote_right_to_left(page, site):
    page.goto(site + "/id/azerbaijan")
    quote = page.locator("blockquote[lang=ar]", has_text=QUOTE_AR).first
    quote.wait_for()
    assert quote.evaluate("e => getComputedStyle(e).direction") == "rtl"
    assert page.locator("blockquote[lang=ar]", has_text=CLAIM_AR).count() == 1
    assert page.get_by_text(QUOTE_EN).first.is_visible()
    page.screenshot(path=SHOTS["entity"], full_page=True)

    page.locator("article.statement a", has_text="Azerbaijan's full membership").click()
    page.wait_for_url(site + "/id/membership-full")
    assert page.get_by_role("heading", name="Source of this fact").is_visible()
    assert_stayed_home(page)


def test_ontology_anchor_lands_on_the_term(page, site):
    page.goto(site + "/ontology#CountStatement")
    term = page.locator("article#CountStatement")
    term.wait_for()
    assert term.evaluate("e => e.matches(':target')")
    top = term.evaluate("e => e.getBoundingClientRect().top")
    assert 0 <= top < 200  # scrolled to it
    page.screenshot(path=SHOTS["ontology"], full_page=False)
    assert_stayed_home(page)
