"""The Atom 1.0 document of current deals (GET /feeds/deals.atom), built with ElementTree (it
escapes every text). Entry ids are stable tag URIs of (slug, seller, reduction time); links are
relative to the feed's address (``/p/{slug}``), so the document does not depend on the Host."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote
from xml.etree import ElementTree as ET

from api.queries.deals import Deal

ATOM_NS = "http://www.w3.org/2005/Atom"
FEED_ID = "tag:pricecat,2026:deals"
EMPTY_UPDATED = "1970-01-01T00:00:00Z"
ET.register_namespace("", ATOM_NS)


def czk(value: float | None) -> str:
    """1234.5 -> '1 234,50 Kč', 900.0 -> '900 Kč' (Czech: NBSP thousands, decimal comma)."""
    if value is None:
        return "?"
    whole = f"{value:,.2f}".replace(",", "\u00a0").replace(".", ",")
    if whole.endswith(",00"):
        whole = whole[:-3]
    return whole + "\u00a0Kč"


def percent(value: float | None) -> str:
    """22.0 -> '22 %', 16.7 -> '16,7 %'."""
    if value is None:
        return "?"
    text = f"{value:.1f}".replace(".", ",")
    return (text[:-2] if text.endswith(",0") else text) + "\u00a0%"


def entry_id(deal: Deal) -> str:
    return (
        f"{FEED_ID}:{quote(deal['slug'], safe='')}:{quote(deal['seller'], safe='')}:"
        f"{deal['reduced_at']}"
    )


def entry_title(deal: Deal) -> str:
    return (
        f"{deal['name'] or deal['slug']}: {czk(deal['price'])} u {deal['seller']}, sleva "
        f"{percent(deal['discount_percent'])} z {czk(deal['prior_price'])}"
    )


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    node = ET.SubElement(parent, f"{{{ATOM_NS}}}{tag}", attrs)
    if text is not None:
        node.text = text
    return node


def deals_feed(items: Sequence[Deal]) -> bytes:
    feed = ET.Element(f"{{{ATOM_NS}}}feed")
    feed.set("{http://www.w3.org/XML/1998/namespace}lang", "cs")
    _sub(feed, "id", FEED_ID)
    _sub(feed, "title", "pricecat: slevy")
    _sub(feed, "subtitle", "Skutečné slevy: cena pod nejnižší cenou za 30 dní před zlevněním")
    updated = max((d["reduced_at"] or EMPTY_UPDATED for d in items), default=EMPTY_UPDATED)
    _sub(feed, "updated", updated)
    author = _sub(feed, "author")
    _sub(author, "name", "pricecat")
    _sub(feed, "link", rel="self", href="/feeds/deals.atom", type="application/atom+xml")
    _sub(feed, "link", rel="alternate", href="/slevy", type="text/html")
    for deal in items:
        entry = _sub(feed, "entry")
        _sub(entry, "id", entry_id(deal))
        _sub(entry, "title", entry_title(deal))
        _sub(entry, "updated", deal["reduced_at"] or EMPTY_UPDATED)
        _sub(entry, "link", rel="alternate", href=f"/p/{quote(deal['slug'])}", type="text/html")
        _sub(
            entry,
            "summary",
            f"Cena {czk(deal['price'])} (sleva {percent(deal['discount_percent'])} z "
            f"{czk(deal['prior_price'])}, nejnižší ceny za 30 dní před zlevněním).",
        )
    document: bytes = ET.tostring(feed, encoding="utf-8", xml_declaration=True)
    return document
