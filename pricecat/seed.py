"""`pricecat seed`: deterministic synthetic snapshots shaped like the scraper's production table.

The generator models a scraper that runs a crawl cycle every few hours over a ~4-month window
ending at ``--now``. Every (slug, seller) *listing* is revisited on its own rhythm (priority
sellers more often), so the 2.08M default rows spread over ~33k listings of 11,059 slugs; active
listings are all visited in the last cycle, which ends exactly at ``--now`` (fresh data).

Everything is drawn from one ``random.Random(seed)`` consumed in a fixed order, so a given
``--seed``/``--now``/``--rows``/``--slugs`` always produces byte-identical rows. Rows are
streamed through ``COPY`` (asyncpg ``copy_records_to_table``) in ``scraped_at`` order, like the
real scraper appends them: only the catalogue and the visit schedule (4 bytes per row) are held in
memory, never the rows.

``--history-multiplier N`` keeps the catalogue (the same slugs, codes, sellers and listings: it is
drawn before anything that depends on the row count) and makes N times the rows over N times the
window (N x 120 days, N x the crawl cycles, still one every ~3 hours), so every listing has about N
times the snapshots: the benchmarks' "10x history" (``--history-multiplier 10``: 20.8M rows). On a
fresh database all of it lands in the history partition (everything before next month, see
``pricecat.partitions``), like a converted production table.

Shape (defaults): 11,059 slugs, exactly 11,399 distinct (slug, product_code) pairs (some products
are listed under 2-3 codes, as on the real site; scaled for other ``--slugs``), 8 sellers with
``tlamagames``/``tlamagase`` on most slugs, Czech names with diacritics, price changes and
temporary sales, ~0.5 % NULL prices, noisy raw availability texts and category tags, empty and
NULL descriptions/images.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import re
import sys
import time
import unicodedata
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from pricecat import migrate
from pricecat.config import Settings

log = logging.getLogger(__name__)

COLUMNS: tuple[str, ...] = (
    "scraped_at",
    "seller",
    "product_code",
    "product_name_original",
    "product_name_normalized",
    "price",
    "availability",
    "url",
    "image_url",
    "description",
    "categories",
)

DEFAULT_ROWS = 2_080_000
DEFAULT_SLUGS = 11_059
#: distinct (slug, product_code) pairs at the default slug count (the legacy by-code model's size)
DEFAULT_PAIRS = 11_399
WINDOW = timedelta(days=120)
MIN_CYCLES = 960  # one crawl cycle every 3 hours over 120 days (times the history multiplier)
CHUNK_ROWS = 50_000

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: The raw availability texts the shops show (the issue's list); NULL is the 15th variant.
AVAILABILITY_TEXTS: tuple[str, ...] = (
    "Skladem",
    "skladem > 5 ks",
    "Na skladě",
    "Na objednávku",
    "U dodavatele",
    "Předobjednávka",
    "Předprodej",
    "Připravujeme",
    "Vyprodáno",
    "Není skladem",
    "Dočasně nedostupné",
    "In stock",
    "Out of stock",
    "Preorder",
)

# availability states of a listing; "pre" = preorder, "order" = orderable but not in stock
IN, ORDER, PRE, OUT = "in", "order", "pre", "out"
#: per-snapshot probability of leaving a state (preorder ends at the release date only)
LEAVE_STATE: dict[str, float] = {IN: 0.02, ORDER: 0.05, OUT: 0.06, PRE: 0.0}


@dataclass(frozen=True)
class SellerProfile:
    name: str
    domain: str
    #: probability that the seller lists a given slug
    share: float
    #: relative scrape frequency of its listings
    weight: float
    #: raw availability texts per state
    texts: dict[str, tuple[str, ...]]
    #: share of rows with availability NULL
    null_share: float = 0.002
    #: share of rows whose availability text gets extra whitespace or upper case
    noise_share: float = 0.0
    #: how the shop writes product names: canonical | cz | cz_verze | upper | hra
    name_style: str = "canonical"


SELLERS: tuple[SellerProfile, ...] = (
    SellerProfile(
        "tlamagames", "tlamagames.com", 0.86, 1.6,
        {IN: ("Skladem", "skladem > 5 ks"), ORDER: ("Na objednávku",), PRE: ("Předobjednávka",),
         OUT: ("Vyprodáno",)},
    ),
    SellerProfile(
        "tlamagase", "tlamagase.cz", 0.78, 1.4,
        {IN: ("skladem > 5 ks", "Skladem"), ORDER: ("U dodavatele",), PRE: ("Předprodej",),
         OUT: ("Není skladem",)},
    ),
    SellerProfile(
        "planetaher", "planetaher.cz", 0.30, 1.0,
        {IN: ("Na skladě",), ORDER: ("Na objednávku",), PRE: ("Připravujeme",),
         OUT: ("Dočasně nedostupné",)},
        name_style="cz",
    ),
    SellerProfile(
        "boardgameshop", "boardgameshop.eu", 0.20, 0.8,
        {IN: ("In stock",), ORDER: ("In stock",), PRE: ("Preorder",), OUT: ("Out of stock",)},
        null_share=0.01, name_style="upper",
    ),
    SellerProfile(
        "svetdeskovek", "svetdeskovek.cz", 0.26, 1.0,
        {IN: ("Skladem", "Na skladě"), ORDER: ("Na objednávku",),
         PRE: ("Předobjednávka", "Připravujeme"), OUT: ("Vyprodáno", "Není skladem")},
        null_share=0.02, name_style="cz_verze",
    ),
    SellerProfile(
        "ihrys", "ihrys.cz", 0.20, 0.9,
        {IN: ("skladem > 5 ks", "Skladem"), ORDER: ("U dodavatele",), PRE: ("Předprodej",),
         OUT: ("Dočasně nedostupné",)},
        noise_share=0.06,
    ),
    SellerProfile(
        "fantasyobchod", "fantasyobchod.cz", 0.18, 0.7,
        {IN: ("Na skladě", "skladem > 5 ks"), ORDER: ("U dodavatele",), PRE: ("Preorder",),
         OUT: ("Vyprodáno",)},
        null_share=0.03, name_style="hra",
    ),
    SellerProfile(
        "deskoveherni", "deskoveherni.cz", 0.15, 0.8,
        {IN: ("In stock", "Skladem"), ORDER: ("Na objednávku",), PRE: ("Předobjednávka",),
         OUT: ("Out of stock", "Vyprodáno")},
        noise_share=0.03, name_style="cz",
    ),
)
SELLER_NAMES: tuple[str, ...] = tuple(s.name for s in SELLERS)
_PROFILE = {s.name: s for s in SELLERS}

# --- word lists for names ---------------------------------------------------------------------
# (noun, gender): m / f / n; adjectives are given in the masculine form
NOUNS: tuple[tuple[str, str], ...] = (
    ("les", "m"), ("hrad", "m"), ("drak", "m"), ("poklad", "m"), ("ostrov", "m"),
    ("rytíř", "m"), ("král", "m"), ("vlak", "m"), ("přístav", "m"), ("meč", "m"),
    ("kámen", "m"), ("chrám", "m"), ("úl", "m"), ("mlýn", "m"), ("obchodník", "m"),
    ("sad", "m"), ("labyrint", "m"), ("orloj", "m"), ("kouzelník", "m"), ("pirát", "m"),
    ("koruna", "f"), ("říše", "f"), ("věž", "f"), ("cesta", "f"), ("louka", "f"),
    ("zahrada", "f"), ("karavana", "f"), ("kronika", "f"), ("legenda", "f"), ("výprava", "f"),
    ("bitva", "f"), ("laboratoř", "f"), ("plavba", "f"), ("hvězda", "f"), ("farma", "f"),
    ("džungle", "f"), ("galaxie", "f"), ("dílna", "f"), ("osada", "f"), ("katedrála", "f"),
    ("město", "n"), ("království", "n"), ("údolí", "n"), ("moře", "n"), ("jezero", "n"),
    ("bludiště", "n"), ("dobrodružství", "n"), ("proroctví", "n"), ("panství", "n"),
    ("tajemství", "n"), ("hnízdo", "n"), ("kouzlo", "n"), ("impérium", "n"), ("nádraží", "n"),
)
ADJECTIVES: tuple[str, ...] = (
    "ztracený", "temný", "zlatý", "starý", "velký", "malý", "tajný", "divoký", "krvavý",
    "zelený", "modrý", "rudý", "ledový", "kamenný", "horský", "lesní", "noční", "zimní",
    "královský", "čarovný", "zapomenutý", "prokletý", "stříbrný", "bílý", "černý", "ohnivý",
    "mlžný", "dračí", "vesmírný", "mořský", "tichý", "hladový", "poslední", "první",
    "železný", "věčný", "rychlý", "šílený", "veselý", "moudrý", "český", "žlutý",
)
SUBTITLES: tuple[str, ...] = (
    "Rozšíření", "Velká krabice", "Základní hra", "Sběratelská edice", "Duel", "Junior",
    "Pro dva", "Kostková hra", "Karetní hra", "Legendy", "Návrat", "Nová generace",
    "Edice 2024", "Příběhy", "Výprava na sever", "Ďáblova úžina",
)
ROMAN = ("II", "III", "IV")
KINDS = ("rodinná", "strategická", "karetní", "kooperativní", "párty", "abstraktní", "logická",
         "dětská", "ekonomická", "dobrodružná")
BLURBS = (
    "Sbírejte suroviny, stavějte a obchodujte se sousedy.",
    "Každá partie je jiná díky proměnlivému hernímu plánu.",
    "Ideální volba pro herní večery s přáteli i rodinou.",
    "Pravidla vysvětlíte za pět minut, hrát budete roky.",
    "Obsahuje české pravidla a kvalitní dřevěné komponenty.",
    "Oceněná hra roku s nádhernými ilustracemi.",
    "Napínavé souboje, blafování a trocha štěstí.",
    "Spolupracujte, nebo společně prohrajte.",
    "Rychlá hra do kapsy, skvělá na cesty.",
    "Rozšiřte svou sbírku o nové scénáře a postavy.",
)
TAGS: tuple[str, ...] = (
    "rodinné hry", "Pro 2 hráče", "strategické hry", "Párty hry", "kooperativní hry",
    "karetní hry", "dětské hry", "abstraktní hry", "logické hry", "rozšíření",
    "hry pro dospělé", "hry na cesty", "Pro 1 hráče", "ekonomické hry", "fantasy", "sci-fi",
    "dobrodružné hry", "vědomostní hry",
)


def slugify(name: str) -> str:
    """Unaccented, lower-case, hyphenated (the scraper's product_name_normalized)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")


def extra_code_count(slugs: int) -> int:
    """How many (slug, code) pairs exceed one per slug: 340 at 11,059 slugs, scaled linearly."""
    return round(slugs * (DEFAULT_PAIRS - DEFAULT_SLUGS) / DEFAULT_SLUGS)


def expected_pairs(slugs: int) -> int:
    return slugs + extra_code_count(slugs)


def default_now() -> datetime:
    return datetime.now(UTC).replace(second=0, microsecond=0)


def parse_now(value: str | None) -> datetime:
    if not value:
        return default_now()
    ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC)


def _adjective(masc: str, gender: str) -> str:
    if masc.endswith("ý") and gender != "m":
        return masc[:-1] + ("á" if gender == "f" else "é")
    return masc


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _name(rng: random.Random) -> str:
    noun, gender = rng.choice(NOUNS)
    adj = _adjective(rng.choice(ADJECTIVES), gender)
    base = _cap(f"{adj} {noun}")
    r = rng.random()
    if r < 0.30:
        return base
    if r < 0.60:
        return f"{base}: {rng.choice(SUBTITLES)}"
    if r < 0.72:
        other, _ = rng.choice(NOUNS)
        return f"{_cap(noun)} a {other}"
    if r < 0.82:
        return f"{base} {rng.choice(ROMAN)}"
    if r < 0.90:
        noun2, gender2 = rng.choice(NOUNS)
        return f"{_cap(noun)}: {_adjective(rng.choice(ADJECTIVES), gender2)} {noun2}"
    if r < 0.95:
        return f"{base} – {rng.choice(SUBTITLES).lower()}"
    return f"{base}!"


def _seller_name(name: str, style: str) -> str:
    if style == "cz":
        return f"{name} (CZ)"
    if style == "cz_verze":
        return f"{name} - česká verze"
    if style == "upper":
        return name.upper()
    if style == "hra":
        return f"Desková hra {name}"
    return name


def _noisy_tags(rng: random.Random, tags: Sequence[str]) -> str:
    parts: list[str] = []
    for tag in tags:
        r = rng.random()
        if r < 0.15:
            tag = tag.lower()
        elif r < 0.25:
            tag = tag.title()
        elif r < 0.30:
            tag = tag.upper()
        if rng.random() < 0.08:
            tag = tag.replace(" ", "  ", 1)
        r = rng.random()
        if r < 0.25:
            tag = f" {tag} "
        elif r < 0.35:
            tag = f"{tag} "
        parts.append(tag)
    if rng.random() < 0.05:
        parts.insert(rng.randrange(len(parts) + 1), " ")
    sep = rng.choice((",", ", ", " ,", ","))
    out = sep.join(parts)
    if rng.random() < 0.05:
        out += ","
    return out


def _round_price(cents: float) -> int:
    """Shop-like price in hundredths: whole crowns ending in 9, a few ending in .90."""
    crowns = max(49, int(cents / 100)) // 10 * 10 + 9
    if (crowns // 10) % 7 == 0:
        return crowns * 100 - 10
    return crowns * 100


@dataclass
class Listing:
    """One (slug, seller) as the scraper sees it, with the state it evolves per snapshot."""

    idx: int
    seller_idx: int
    seller: str
    slug: str
    code: str
    name: str
    url: str | None
    image: str | None
    description: str | None
    categories: str | None
    regular: int
    state: str
    text: str
    release_frac: float
    weight: float
    start_frac: float
    end_frac: float
    name2: str = ""
    rename_at: int = 1 << 30
    sale_left: int = 0
    sale_cents: int = 0
    n: int = 0
    seen: int = 0


@dataclass
class SeedStats:
    rows: int = 0
    slugs: int = 0
    pairs: int = 0
    listings: int = 0
    cycles: int = 0
    null_prices: int = 0
    max_scraped_at: datetime | None = None
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


class Generator:
    """Builds the catalogue, then yields rows cycle by cycle in scraped_at order."""

    def __init__(self, rows: int, slugs: int, seed: int, now: datetime,
                 history_multiplier: int = 1) -> None:
        """`rows` in total (the CLI passes --rows x --history-multiplier) over
        `history_multiplier` x WINDOW."""
        if slugs < 1:
            raise ValueError("--slugs must be at least 1")
        if history_multiplier < 1:
            raise ValueError("--history-multiplier must be at least 1")
        self.rows = rows
        self.multiplier = history_multiplier
        self.window = WINDOW * history_multiplier
        self.slug_count = slugs
        self.seed = seed
        self.now = now
        self.rng = random.Random(seed)
        self.listings: list[Listing] = []
        self.pairs: set[tuple[str, str]] = set()
        self.cycles = MIN_CYCLES * history_multiplier
        self._decimals: dict[int, Decimal] = {}
        self._build_catalogue()
        if rows < len(self.listings):
            raise ValueError(
                f"--rows {rows} is too small: {slugs} slugs make {len(self.listings)} "
                "(slug, seller) listings and each needs at least one snapshot"
            )
        self._allocate_rows()

    # -- catalogue ---------------------------------------------------------------------------
    def _unique_names(self) -> list[tuple[str, str]]:
        rng = self.rng
        seen: set[str] = set()
        out: list[tuple[str, str]] = []
        attempts = 0
        while len(out) < self.slug_count:
            attempts += 1
            name = _name(rng)
            if attempts > self.slug_count * 20:
                name = f"{name} {len(out)}"  # the word lists ran out: number it
            slug = slugify(name)
            if slug in seen:
                continue
            seen.add(slug)
            out.append((name, slug))
        out.sort(key=lambda pair: pair[1])
        return out

    def _codes(self) -> list[list[str]]:
        rng = self.rng
        n = self.slug_count
        extra = extra_code_count(n)
        triples = extra // 17
        doubles = extra - 2 * triples
        counts = [1] * n
        chosen = rng.sample(range(n), triples + doubles)
        for i in chosen[:triples]:
            counts[i] = 3
        for i in chosen[triples:]:
            counts[i] = 2
        used: set[str] = set()
        codes: list[list[str]] = []
        for count in counts:
            mine: list[str] = []
            while len(mine) < count:
                if rng.random() < 0.7:
                    code = f"859{rng.randrange(10**9, 10**10)}"  # EAN-13-like
                else:
                    prefix = rng.choice(("TG", "CGE", "MIN", "ALB", "REX", "BLK", "ASM"))
                    code = f"{prefix}{rng.randrange(1000, 99999):05d}"
                if code not in used:
                    used.add(code)
                    mine.append(code)
            codes.append(mine)
        return codes

    def _build_catalogue(self) -> None:
        rng = self.rng
        names = self._unique_names()
        codes = self._codes()
        for slug_idx, (name, slug) in enumerate(names):
            slug_codes = codes[slug_idx]
            sellers = [i for i, s in enumerate(SELLERS) if rng.random() < s.share]
            while len(sellers) < max(1, len(slug_codes)):
                extra = rng.randrange(2, len(SELLERS))
                if extra not in sellers:
                    sellers.append(extra)
            sellers.sort()
            base = _round_price(100 * min(4999.0, max(99.0, rng.lognormvariate(6.4, 0.6))))
            kind = rng.choice(KINDS)
            players = rng.randint(1, 3)
            description = (
                f"{name} je {kind} hra pro {players}–{players + rng.randint(1, 4)} hráčů "
                f"od {rng.choice((6, 8, 10, 12, 14))} let. {rng.choice(BLURBS)}"
            )
            tags = rng.sample(TAGS, rng.randint(1, 4))
            is_preorder_product = rng.random() < 0.06
            release = rng.uniform(0.3, 1.3) if is_preorder_product else -1.0
            for k, seller_idx in enumerate(sellers):
                profile = SELLERS[seller_idx]
                code = slug_codes[k % len(slug_codes)]
                self.pairs.add((slug, code))
                r = rng.random()
                image: str | None
                if r < 0.8:
                    image = f"https://cdn.{profile.domain}/img/{slug}-{rng.randint(1, 9)}.jpg"
                else:
                    image = "" if r < 0.9 else None
                r = rng.random()
                desc: str | None
                if r < 0.6:
                    desc = description
                else:
                    desc = "" if r < 0.8 else None
                r = rng.random()
                cats: str | None
                if r < 0.88:
                    cats = _noisy_tags(rng, tags)
                else:
                    cats = "" if r < 0.92 else None
                url = None if rng.random() < 0.01 else f"https://www.{profile.domain}/{slug}"
                regular = _round_price(base * rng.uniform(0.88, 1.12))
                if is_preorder_product:
                    state = PRE
                else:
                    r = rng.random()
                    state = IN if r < 0.7 else ORDER if r < 0.85 else OUT
                text = rng.choice(profile.texts[state])
                r = rng.random()
                start_frac, end_frac = 0.0, 1.0
                if r < 0.12:  # a product that appeared later
                    start_frac = rng.uniform(0.05, 0.9)
                elif r < 0.16:  # a listing the shop dropped
                    end_frac = rng.uniform(0.3, 0.95)
                weight = profile.weight * rng.uniform(0.6, 1.4) * (end_frac - start_frac)
                listing = Listing(
                    idx=len(self.listings),
                    seller_idx=seller_idx,
                    seller=profile.name,
                    slug=slug,
                    code=code,
                    name=_seller_name(name, profile.name_style),
                    url=url,
                    image=image,
                    description=desc,
                    categories=cats,
                    regular=regular,
                    state=state,
                    text=text,
                    release_frac=release,
                    weight=weight,
                    start_frac=start_frac,
                    end_frac=end_frac,
                )
                if rng.random() < 0.02:
                    listing.name2 = f"{listing.name} (2. vydání)"
                    listing.rename_at = -1  # set once the row count is known
                self.listings.append(listing)

    def _allocate_rows(self) -> None:
        """Exactly `rows` snapshots: one per listing plus the rest by weight (largest remainder)."""
        listings = self.listings
        spare = self.rows - len(listings)
        total = sum(li.weight for li in listings)
        shares = [spare * li.weight / total for li in listings]
        floors = [int(s) for s in shares]
        left = spare - sum(floors)
        order = sorted(range(len(listings)), key=lambda i: (floors[i] - shares[i], i))
        for i in order[:left]:
            floors[i] += 1
        need = MIN_CYCLES * self.multiplier
        for li, extra in zip(listings, floors, strict=True):
            li.n = 1 + extra
            frac = li.end_frac - li.start_frac
            need = max(need, int((2 * (li.n - 1) + 3) / frac) + 3)
            if li.rename_at == -1:
                li.rename_at = self.rng.randint(0, li.n)
        self.cycles = need

    # -- rows --------------------------------------------------------------------------------
    def _decimal(self, cents: int) -> Decimal:
        dec = self._decimals.get(cents)
        if dec is None:
            dec = Decimal(f"{cents // 100}.{cents % 100:02d}")
            self._decimals[cents] = dec
        return dec

    def _schedule(self) -> list[array[int]]:
        """Per crawl cycle, the indexes of the listings visited in it (4 bytes per row)."""
        cycles = self.cycles
        last = cycles - 1
        buckets: list[array[int]] = [array("I") for _ in range(cycles)]
        rand = self.rng.random
        for li in self.listings:
            start = int(li.start_frac * last)
            end = int(li.end_frac * last)
            n = li.n
            if n == 1:
                buckets[end].append(li.idx)
                continue
            step = (end - start) / (n - 1)
            assert step >= 2, (li, step)
            for j in range(n):
                x = end - j * step
                if 0 < j < n - 1:
                    x += (rand() - 0.5) * 0.5 * step
                buckets[int(x + 0.5)].append(li.idx)
        return buckets

    def rows_iter(self) -> Iterator[tuple[Any, ...]]:
        """Yield row tuples (COLUMNS order) in scraped_at order."""
        rng = self.rng
        rand = rng.random
        choice = rng.choice
        listings = self.listings
        cycles = self.cycles
        buckets = self._schedule()
        now_us = (self.now - EPOCH) // timedelta(microseconds=1)
        period_us = (self.window // timedelta(microseconds=1)) // (cycles - 1)
        offsets = [int(period_us * 0.3 * k / len(SELLERS)) for k in range(len(SELLERS))]
        budget = period_us * 0.6
        decimal = self._decimal
        profiles = SELLERS
        for c in range(cycles):
            bucket = buckets[c]
            if not bucket:
                continue
            cycle_end = now_us - (cycles - 1 - c) * period_us
            per_seller: dict[int, list[int]] = {}
            for i in bucket:
                per_seller.setdefault(listings[i].seller_idx, []).append(i)
            timed: list[tuple[int, int]] = []
            for seller_idx, members in per_seller.items():
                n_s = len(members)
                gap = int(min(900_000.0, budget / n_s))
                end = cycle_end - offsets[seller_idx]
                for k, i in enumerate(members):
                    back = (n_s - 1 - k) * gap
                    if back:
                        back += (i * 7919) % max(1, gap // 2)
                    timed.append((end - back, i))
            timed.sort()
            for t_us, i in timed:
                li = listings[i]
                profile = profiles[li.seller_idx]
                # price: NULL, a temporary sale, a permanent change, or unchanged
                r = rand()
                if r < 0.005:
                    price = None
                    if li.sale_left:
                        li.sale_left -= 1
                elif li.sale_left:
                    li.sale_left -= 1
                    price = decimal(li.sale_cents if li.sale_left else li.regular)
                elif r < 0.017:
                    li.sale_left = 2 + int(r * 100_000) % 9
                    li.sale_cents = _round_price(li.regular * (0.68 + 0.22 * rand()))
                    price = decimal(li.sale_cents)
                elif r < 0.027:
                    li.regular = _round_price(li.regular * (0.9 + 0.22 * rand()))
                    price = decimal(li.regular)
                else:
                    price = decimal(li.regular)
                # availability: preorder until release, then a slow random walk over states
                if li.state == PRE and 0 <= li.release_frac * cycles <= c:
                    li.state = IN
                    li.text = choice(profile.texts[IN])
                r = rand()
                if r < LEAVE_STATE[li.state]:
                    s = rand()
                    if li.state == IN:
                        new = ORDER if s < 0.4 else OUT
                    else:
                        new = IN if s < 0.8 else OUT if li.state == ORDER else ORDER
                    li.state = new
                    li.text = choice(profile.texts[new])
                elif r > 0.93 and li.state == IN:
                    li.text = choice(profile.texts[IN])
                availability: str | None = li.text
                if 0.1 <= r < 0.1 + profile.null_share:
                    availability = None
                elif 0.3 <= r < 0.3 + profile.noise_share:
                    availability = (
                        f" {availability} " if r < 0.3 + profile.noise_share / 2
                        else li.text.upper()
                    )
                image = li.image
                if image and 0.5 <= r < 0.52:
                    image = ""
                description = li.description
                if description and 0.6 <= r < 0.615:
                    description = None
                name = li.name2 if li.seen >= li.rename_at else li.name
                li.seen += 1
                yield (
                    EPOCH + timedelta(microseconds=t_us),
                    li.seller,
                    li.code,
                    name,
                    li.slug,
                    price,
                    availability,
                    li.url,
                    image,
                    description,
                    li.categories,
                )


# --- database side ---------------------------------------------------------------------------


def _progress(total: int, desc: str) -> Any:
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency of dbt/prefect
        return None
    return tqdm(total=total, desc=desc, unit="rows", unit_scale=True, mininterval=2.0,
                file=sys.stderr)


async def _copy(conn: asyncpg.Connection, rows: Iterator[tuple[Any, ...]], total: int) -> int:
    bar = _progress(total, "seed")
    written = 0
    chunk: list[tuple[Any, ...]] = []
    last_print = time.monotonic()
    try:
        for row in rows:
            chunk.append(row)
            if len(chunk) >= CHUNK_ROWS:
                await conn.copy_records_to_table(
                    "product_price_snapshots", schema_name="public", columns=list(COLUMNS),
                    records=chunk,
                )
                written += len(chunk)
                if bar is not None:
                    bar.update(len(chunk))
                elif time.monotonic() - last_print > 5:
                    print(f"seed: {written:,}/{total:,} rows", file=sys.stderr)
                    last_print = time.monotonic()
                chunk = []
        if chunk:
            await conn.copy_records_to_table(
                "product_price_snapshots", schema_name="public", columns=list(COLUMNS),
                records=chunk,
            )
            written += len(chunk)
            if bar is not None:
                bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
    return written


async def seed_table(conn: asyncpg.Connection, rows: int, slugs: int, seed: int,
                     now: datetime, history_multiplier: int = 1) -> SeedStats:
    """`rows` snapshots in total over `history_multiplier` x WINDOW ending at `now`."""
    started = time.monotonic()
    gen = Generator(rows, slugs, seed, now, history_multiplier)
    stats = SeedStats(slugs=slugs, pairs=len(gen.pairs), listings=len(gen.listings),
                      cycles=gen.cycles)

    def counted() -> Iterator[tuple[Any, ...]]:
        for row in gen.rows_iter():
            if row[5] is None:
                stats.null_prices += 1
            stats.max_scraped_at = row[0]
            yield row

    async with conn.transaction():
        await conn.execute("set local synchronous_commit = off")
        stats.rows = await _copy(conn, counted(), rows)
    await conn.execute("analyze public.product_price_snapshots")
    stats.seconds = time.monotonic() - started
    if stats.rows != rows:  # pragma: no cover - a generator bug
        raise RuntimeError(f"generated {stats.rows} rows instead of {rows}")
    return stats


# --- one more scrape cycle ----------------------------------------------------------------------

#: the latest snapshot per (slug, seller); ties on scraped_at -> highest id
LATEST_PER_LISTING_SQL = """
with latest as (
    select distinct on (product_name_normalized, seller) id
    from public.product_price_snapshots
    order by product_name_normalized, seller, scraped_at desc, id desc
)
select
    p.seller, p.product_code, p.product_name_original, p.product_name_normalized, p.price,
    p.availability, p.url, p.image_url, p.description, p.categories
from public.product_price_snapshots as p
inner join latest on latest.id = p.id
"""
#: the same through the (slug, seller, scraped_at) index when `pricecat migrate` built it
LATEST_PER_LISTING_INDEXED_SQL = """
with listings as (
    select distinct product_name_normalized, seller from public.product_price_snapshots
)
select
    p.seller, p.product_code, p.product_name_original, p.product_name_normalized, p.price,
    p.availability, p.url, p.image_url, p.description, p.categories
from listings as k
cross join lateral (
    select *
    from public.product_price_snapshots as s
    where s.product_name_normalized = k.product_name_normalized and s.seller = k.seller
    order by s.scraped_at desc, s.id desc
    limit 1
) as p
"""

_AVAILABLE_TEXTS = {
    t.lower() for s in SELLERS for t in s.texts[IN] + s.texts[ORDER]
}


def _flip_availability(seller: str, text: str | None, rng: random.Random) -> str:
    profile = _PROFILE.get(seller)
    in_texts = profile.texts[IN] if profile else ("Skladem",)
    out_texts = profile.texts[OUT] if profile else ("Vyprodáno",)
    if text is not None and text.strip().lower() in _AVAILABLE_TEXTS:
        return rng.choice(out_texts)
    return rng.choice(in_texts)


async def cycle_records(
    conn: asyncpg.Connection,
    seed: int,
    now: datetime | None,
    interval: timedelta = timedelta(minutes=15),
) -> tuple[list[tuple[Any, ...]], SeedStats]:
    """The rows of one scrape cycle (COLUMNS order, not written): one new snapshot per existing
    (slug, seller), all after the table's newest scraped_at: at ``interval`` after it, or at
    ``now`` when that is later. ``stats.extra["price_changes"]`` lists (index in the rows, old
    price, new price) of the rows whose price changed to another non-NULL price."""
    started = time.monotonic()
    max_ts: datetime | None = await conn.fetchval(
        "select max(scraped_at) from public.product_price_snapshots"
    )
    if max_ts is None:
        raise ValueError("the raw table is empty: seed it before appending a cycle")
    cycle_at = max_ts + interval
    if now is not None and now > cycle_at:
        cycle_at = now
    cycle_at = cycle_at.replace(microsecond=0)
    indexed = await conn.fetchval(
        """
        select i.indisvalid
        from pg_index i
        inner join pg_class c on c.oid = i.indexrelid
        where i.indrelid = 'public.product_price_snapshots'::regclass
            and c.relname = 'idx_product_price_snapshots_slug_seller_scraped'
        """
    )
    await conn.execute("set jit = off")
    latest = await conn.fetch(
        LATEST_PER_LISTING_INDEXED_SQL if indexed else LATEST_PER_LISTING_SQL
    )
    rng = random.Random(f"{seed}:{cycle_at.isoformat()}")
    n = len(latest)
    span = min(600.0, (cycle_at - max_ts).total_seconds() * 0.66)
    records: list[tuple[Any, ...]] = []
    ordered = sorted(latest, key=lambda r: (r["seller"], r["product_name_normalized"]))
    null_prices = 0
    price_changes: list[tuple[int, Decimal | None, Decimal]] = []
    for k, rec in enumerate(ordered):
        back = span * (n - 1 - k) / max(1, n - 1)
        scraped_at = cycle_at - timedelta(seconds=round(back, 6))
        price: Decimal | None = rec["price"]
        availability: str | None = rec["availability"]
        r = rng.random()
        if r < 0.03 and price is not None:
            price = Decimal(_round_price(float(price) * 100 * rng.uniform(0.85, 1.1))) / 100
            price = price.quantize(Decimal("0.01"))
        elif r < 0.05:
            availability = _flip_availability(rec["seller"], availability, rng)
        elif r < 0.055:
            price = None
        if price is None:
            null_prices += 1
        elif price != rec["price"]:
            price_changes.append((k, rec["price"], price))
        records.append((
            scraped_at, rec["seller"], rec["product_code"], rec["product_name_original"],
            rec["product_name_normalized"], price, availability, rec["url"], rec["image_url"],
            rec["description"], rec["categories"],
        ))
    stats = SeedStats(rows=n, listings=n, null_prices=null_prices,
                      max_scraped_at=records[-1][0] if records else None)
    stats.slugs = len({r["product_name_normalized"] for r in latest})
    stats.pairs = len({(r["product_name_normalized"], r["product_code"]) for r in latest})
    stats.extra["price_changes"] = price_changes
    stats.seconds = time.monotonic() - started
    return records, stats


async def append_cycle(
    conn: asyncpg.Connection,
    seed: int,
    now: datetime | None,
    interval: timedelta = timedelta(minutes=15),
) -> SeedStats:
    """One scrape cycle (`cycle_records`) written in one COPY transaction."""
    started = time.monotonic()
    records, stats = await cycle_records(conn, seed, now, interval)
    async with conn.transaction():
        await conn.copy_records_to_table(
            "product_price_snapshots", schema_name="public", columns=list(COLUMNS),
            records=records,
        )
    stats.seconds = time.monotonic() - started
    return stats


# --- entry point --------------------------------------------------------------------------------


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    await migrate.ensure_database(settings)
    conn = await asyncpg.connect(settings.database_url)
    try:
        await migrate.create_raw_table(conn)
        if getattr(args, "truncate", False):
            await conn.execute("truncate public.product_price_snapshots restart identity")
            print("seed: truncated public.product_price_snapshots")
        has_rows = await conn.fetchval(
            "select exists (select 1 from public.product_price_snapshots)"
        )
        now = parse_now(args.now)
        if getattr(args, "append_cycle", False):
            if not has_rows:
                print("seed: the table is empty; seed it before --append-cycle", file=sys.stderr)
                return 1
            stats = await append_cycle(conn, args.seed, now)
            print(
                f"seed: appended one cycle: {stats.rows:,} rows ({stats.slugs:,} slugs, "
                f"{stats.pairs:,} pairs) ending {stats.max_scraped_at} "
                f"in {stats.seconds:.1f} s"
            )
            return 0
        if has_rows:
            if getattr(args, "if_empty", False):
                print("seed: public.product_price_snapshots already has rows; skipped")
                return 0
            print(
                "seed: public.product_price_snapshots already has rows; pass --truncate to "
                "replace them, --if-empty to skip, or --append-cycle to add a scrape cycle",
                file=sys.stderr,
            )
            return 1
        extra_indexes = await conn.fetchval(
            """
            select count(*) from pg_index i
            where i.indrelid = 'public.product_price_snapshots'::regclass and not i.indisprimary
            """
        )
        if extra_indexes:
            log.warning("the raw table has %s secondary indexes: COPY will be slower "
                        "(seed after `pricecat migrate --no-indexes`)", extra_indexes)
        multiplier = getattr(args, "history_multiplier", 1)
        if multiplier < 1:
            raise ValueError("--history-multiplier must be at least 1")
        stats = await seed_table(conn, args.rows * multiplier, args.slugs, args.seed, now,
                                 multiplier)
        history = f" over {multiplier} x {WINDOW.days} days" if multiplier > 1 else ""
        print(
            f"seed: {stats.rows:,} rows{history}, {stats.slugs:,} slugs, {stats.pairs:,} "
            f"(slug, product_code) pairs, {stats.listings:,} (slug, seller) listings, "
            f"{stats.null_prices:,} null prices, newest {stats.max_scraped_at}, "
            f"{stats.seconds:.1f} s"
        )
        return 0
    finally:
        await conn.close()


def main(settings: Settings, args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_run(settings, args))
    except ValueError as exc:
        print(f"seed: {exc}", file=sys.stderr)
        return 2
