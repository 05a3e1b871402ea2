"""WebShop's pages as the text env sees them (verl-agent's vendored ``templates/*.html``).

Upstream renders HTML with Jinja and reads it back with BeautifulSoup: the ``text`` observation is
every visible text node, stripped, joined with ``" [SEP] "``; ``text_rich`` marks buttons,
options and product links. A page here is that node list directly: ``(text, kind)`` pairs in
document order, with BeautifulSoup's whitespace rule applied to each node (an all-whitespace node
becomes ``"\\n"`` if it holds a newline, which both modes drop, else ``" "``).
Clickables are keyed like ``get_available_actions``: button and product-link texts lowercased,
then option values (already lowercase) in page order; a later equal key overwrites the target
but keeps its first position, as the upstream dict does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

TEXT, BUTTON, LABEL, LINK = "text", "button", "label", "link"
SEP = " [SEP] "
SUB_PAGES = ("Description", "Features", "Reviews", "Attributes")
_ASCII_SPACE = " \n\t\x0c\r"


@dataclass
class Page:
    """One rendered page: ``kind`` in {search, results, item, item_sub, done}."""

    kind: str
    nodes: list[tuple[str, str]] = field(default_factory=list)
    clickables: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (type, payload)
    has_search_bar: bool = False
    url: str = ""

    def add(self, raw: str, kind: str = TEXT) -> None:
        if raw == "":
            return  # Jinja renders nothing, BeautifulSoup has no node
        if raw.strip(_ASCII_SPACE) == "":
            raw = "\n" if "\n" in raw else " "
        self.nodes.append((raw, kind))

    def button(self, text: str) -> None:
        self.add(text, BUTTON)
        self.clickables[text.lower()] = ("button", text)

    def text(self) -> str:
        """``observation_mode='text'``."""
        return SEP.join(t.strip() for t, _ in self.nodes if t != "\n")

    def text_rich(self, clicked_asins: set[str]) -> str:
        """``observation_mode='text_rich'`` (buttons, option labels and product links marked)."""
        obs = ""
        for t, kind in self.nodes:
            if t == "\n":
                continue
            if kind == BUTTON:
                piece = f"[button] {t} [button_]"
            elif kind == LABEL:
                if f'"{t}"' in self.url:
                    piece = f"  [clicked button] {t} [clicked button_]"
                    obs = f"You have clicked {t}.\n" + obs
                else:
                    piece = f"  [button] {t} [button_]"
            elif kind == LINK:
                mark = "clicked button" if t in clicked_asins else "button"
                piece = f"\n[{mark}] {t} [{mark}_]"
            else:
                piece = t
            obs += piece + "\n"
        return obs

    def available_actions(self) -> dict:
        """``get_available_actions()``: ``{'has_search_bar': bool, 'clickables': [...]}``."""
        return {"has_search_bar": self.has_search_bar, "clickables": list(self.clickables)}


def _instruction(page: Page, instruction: str, search_page: bool = False) -> None:
    page.add("Instruction: " if search_page else "Instruction:")
    page.add(instruction)


def search_page(instruction: str, session_id: str) -> Page:
    page = Page("search", has_search_bar=True, url=f"/{session_id}")
    page.add("WebShop")
    _instruction(page, instruction, search_page=True)
    page.button("Search")
    return page


def results_page(instruction: str, session_id: str, keywords: list[str], page_no: int,
                 products: list, total: int) -> Page:
    """Results ``page_no`` (10 per page) of ``total`` hits; ``Next >`` is always shown, as in
    verl-agent's template, ``< Prev`` from page 2 on."""
    page = Page("results", url=f"/search_results/{session_id}/{'+'.join(keywords)}/{page_no}")
    _instruction(page, instruction)
    page.button("Back to Search")
    page.add(f"Page {page_no} (Total results: {total})")
    if page_no > 1:
        page.button("< Prev")
    page.button("Next >")
    links = []
    for p in products:
        page.add(p.asin, LINK)
        page.add(p.title)
        page.add(p.price_tag)
        links.append(p.asin)
    for asin in links:  # product links follow the buttons in the clickables dict
        page.clickables[asin.lower()] = ("link", asin)
    return page


def item_page(instruction: str, session_id: str, keywords: list[str], page_no: int, product,
              options: dict[str, str], show_attrs: bool = False) -> Page:
    url = (f"/item_page/{session_id}/{product.asin}/{'+'.join(keywords)}/{page_no}/"
           f"{json.dumps(options)}")
    page = Page("item", url=url)
    _instruction(page, instruction)
    page.button("Back to Search")
    page.button("< Prev")
    radios: list[tuple[str, str]] = []
    for name, values in product.options.items():
        page.add(name)
        for v in values:
            page.add(v, LABEL)
            radios.append((v, name))
    page.add(product.title)
    page.add(f"Price: {product.price_tag}")
    page.add(f"Rating: {product.rating}")
    for sub in SUB_PAGES[:4 if show_attrs else 3]:
        page.button(sub)
    page.button("Buy Now")
    for value, name in radios:
        page.clickables[value] = ("radio", name)
    return page


def sub_page(instruction: str, session_id: str, keywords: list[str], page_no: int, product,
             options: dict[str, str], which: str) -> Page:
    """Description / Features / Reviews / Attributes page of ``product``."""
    page = Page("item_sub", url=(f"/item_sub_page/{session_id}/{product.asin}/{'+'.join(keywords)}/"
                                 f"{page_no}/{which}/{options}"))
    _instruction(page, instruction)
    page.button("Back to Search")
    page.button("< Prev")
    if which == "Description":
        page.add(product.description)
    elif which == "Features":
        for b in product.bullet_points:
            page.add(" " + b)
    elif which == "Attributes":
        for a in product.attributes:
            page.add(" " + a)
        page.add(product.category)
        page.add(product.query)
        page.add(product.product_category)
    # Reviews: upstream loads none (the reviews file is commented out), so the page is empty
    return page


def _tojson(obj) -> str:
    """Flask's ``tojson`` filter: sorted keys, ASCII, HTML-safe escapes."""
    s = json.dumps(obj, sort_keys=True)
    return (s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("'", "\\u0027"))


def done_page(session_id: str, asin: str, options: dict[str, str], reward: float) -> Page:
    """The purchase page. Its hidden debug block has no CSS effect on text extraction, so its
    labels (and ``None`` for the fields the simulator does not pass) are part of the text."""
    page = Page("done", url=f"/done/{session_id}/{asin}/{options}")
    for raw in ("Thank you for shopping with us!", "Your code: ", "None",
                " (Paste it in your MTurk interface.)", "Purchased", "asin", asin, "options",
                _tojson(options), "attrs", "None", "category", "None", "query", "None",
                "product category", "None", "Target", "asin", "options", "attrs", "price upper",
                "instuction text", "category", "product category", "query", "Goal ", "None",
                "Reward", "Your score (min 0.0, max 1.0)", str(reward), "Reward Details ", "None"):
        page.add(raw)
    return page
