"""Monthly range partitions of the raw table `public.product_price_snapshots` by `scraped_at`.

Layout (months are UTC calendar months):

- `product_price_snapshots_before_YYYY_MM`: everything before that month (FROM MINVALUE). On a
  converted database this is the old plain table itself, attached without a rewrite; on a fresh
  database it starts empty.
- `product_price_snapshots_pYYYY_MM`: one per month from there on, created ahead of time by
  `ensure_partitions` (`pricecat migrate` and every refresh flow run).
- `product_price_snapshots_default`: the DEFAULT partition. A row whose `scraped_at` lies beyond
  the last monthly partition (a scraper with a wrong clock, or no refresh for two months) lands
  there instead of failing the scraper's whole COPY batch; the dbt staging layer still sees it
  through the parent. When its month's partition is created later, `ensure_partitions` moves such
  rows into it in the same transaction. The price: `DETACH ... CONCURRENTLY` is refused while a
  default partition exists, so detaching an old month takes a brief ACCESS EXCLUSIVE lock on the
  parent (docs/OPERATIONS.md).

Postgres 15 allows no identity column on a partitioned table, so the parent's `id` is
`bigint not null default nextval('public.product_price_snapshots_id_seq')` (the sequence is owned
by the column, so `truncate ... restart identity` still restarts it) and the primary key is
`(id, scraped_at)` (it must contain the partition key).

New partitions are always created with `CREATE TABLE ... (LIKE parent)` and then `ATTACH PARTITION`
(SHARE UPDATE EXCLUSIVE on the parent: readers and writers carry on), never `PARTITION OF`, which
takes ACCESS EXCLUSIVE on the parent.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from pricecat.config import API_ROLE

log = logging.getLogger(__name__)

SCHEMA = "public"
TABLE = "product_price_snapshots"
PARENT = f"{SCHEMA}.{TABLE}"
SEQUENCE = f"{SCHEMA}.{TABLE}_id_seq"
DEFAULT_PARTITION = f"{TABLE}_default"
PRIMARY_KEY = f"{TABLE}_pkey"
#: how many months after the current one get a partition ahead of time
MONTHS_AHEAD = 2
#: lock_timeout for every DDL statement that needs a lock writers or readers could hold
LOCK_TIMEOUT = "1s"
LOCK_ATTEMPTS = 5

#: (name, definition after "on public.product_price_snapshots"): the seed's five raw indexes. On
#: the partitioned parent they are partitioned indexes; every partition has its own copy attached.
RAW_INDEXES: list[tuple[str, str]] = [
    (
        "idx_product_price_snapshots_slug_scraped_id",
        "(product_name_normalized, scraped_at, id)",
    ),
    ("idx_product_price_snapshots_scraped_at_desc", "(scraped_at desc)"),
    (
        "idx_product_price_snapshots_slug_seller_scraped",
        "(product_name_normalized, seller, scraped_at)",
    ),
    (
        "idx_product_price_snapshots_name_trgm",
        "using gin (product_name_original public.gin_trgm_ops)",
    ),
    ("idx_product_price_snapshots_code_trgm", "using gin (product_code public.gin_trgm_ops)"),
]

#: the columns after `id`, shared by the parent of a fresh database and the old plain table
COLUMNS_DDL = """
    scraped_at timestamptz not null,
    seller text not null,
    product_code text,
    product_name_original text not null,
    product_name_normalized text not null,
    price numeric(12, 2),
    availability text,
    url text,
    image_url text,
    description text,
    categories text
"""

#: The raw table as it was before partitioning (plain, identity primary key on `id`). `pricecat
#: migrate` converts it; tests and bench/bench_partition.py create it to exercise the conversion.
LEGACY_TABLE_DDL = f"""
create table {PARENT} (
    id bigint generated always as identity primary key,
    {COLUMNS_DDL}
)
"""

PARENT_DDL = f"""
create table {PARENT} (
    id bigint not null default nextval('{SEQUENCE}'),
    {COLUMNS_DDL},
    constraint {PRIMARY_KEY} primary key (id, scraped_at)
) partition by range (scraped_at)
"""


def index_suffix(name: str) -> str:
    """`idx_product_price_snapshots_scraped_at_desc` -> `scraped_at_desc`."""
    return name.removeprefix(f"idx_{TABLE}_")


def partition_index_name(partition: str, index: str) -> str:
    return f"{partition}_{index_suffix(index)}"[:63]


# --- months --------------------------------------------------------------------------------------


def month_start(ts: datetime) -> datetime:
    ts = ts.astimezone(UTC)
    return datetime(ts.year, ts.month, 1, tzinfo=UTC)


def add_months(month: datetime, n: int) -> datetime:
    index = month.year * 12 + month.month - 1 + n
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def month_partition_name(month: datetime) -> str:
    return f"{TABLE}_p{month:%Y_%m}"


def history_partition_name(cutoff: datetime) -> str:
    return f"{TABLE}_before_{cutoff:%Y_%m}"


def _literal(ts: datetime) -> str:
    """A bound literal for DDL (partition bounds and CHECKs cannot be bind parameters); the value
    is always a datetime computed here, never outside input."""
    return "'" + ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S+00") + "'"


# --- catalog reads -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Partition:
    name: str
    lower: datetime | None  # None: MINVALUE
    upper: datetime | None  # None: MAXVALUE
    is_default: bool = False

    def covers(self, lo: datetime, hi: datetime) -> bool:
        return (self.lower is None or self.lower <= lo) and (self.upper is None or hi <= self.upper)

    def overlaps(self, lo: datetime, hi: datetime) -> bool:
        return (self.lower is None or self.lower < hi) and (self.upper is None or lo < self.upper)


async def table_kind(conn: asyncpg.Connection) -> str | None:
    """'p' partitioned, 'r' plain table, None when the raw table does not exist."""
    kind: str | None = await conn.fetchval(
        """
        select c.relkind::text
        from pg_class c inner join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = $1 and c.relname = $2
        """,
        SCHEMA,
        TABLE,
    )
    return kind


_BOUND = re.compile(r"FOR VALUES FROM \((.+)\) TO \((.+)\)")


def _parse_bound(text: str) -> datetime | None:
    if text == "MINVALUE" or text == "MAXVALUE":
        return None
    return datetime.fromisoformat(text.strip("'")).astimezone(UTC)


async def list_partitions(conn: asyncpg.Connection) -> list[Partition]:
    """The raw table's partitions with their bounds (UTC), oldest first, DEFAULT last."""
    async with conn.transaction():
        # the bound text is rendered in the session time zone: pin it
        await conn.execute("set local timezone = 'UTC'")
        rows = await conn.fetch(
            """
            select c.relname, pg_get_expr(c.relpartbound, c.oid) as bound
            from pg_inherits h
            inner join pg_class c on c.oid = h.inhrelid
            where h.inhparent = $1::regclass
            """,
            PARENT,
        )
    parts: list[Partition] = []
    for row in rows:
        bound: str = row["bound"]
        if bound == "DEFAULT":
            parts.append(Partition(row["relname"], None, None, is_default=True))
            continue
        match = _BOUND.fullmatch(bound)
        if match is None:  # pragma: no cover - only range partitions are ever created
            raise RuntimeError(f"unexpected partition bound for {row['relname']}: {bound}")
        parts.append(Partition(row["relname"], _parse_bound(match[1]), _parse_bound(match[2])))
    epoch = datetime.min.replace(tzinfo=UTC)
    parts.sort(key=lambda p: (p.is_default, p.lower or epoch))
    return parts


# --- DDL helpers ---------------------------------------------------------------------------------


async def run_locked(conn: asyncpg.Connection, what: str, statements: list[str]) -> None:
    """Run `statements` in one transaction under lock_timeout; retry a few times when a lock
    cannot be had (a long reader), so the DDL never queues everybody behind it for long."""
    for attempt in range(1, LOCK_ATTEMPTS + 1):
        try:
            async with conn.transaction():
                await conn.execute(f"set local lock_timeout = '{LOCK_TIMEOUT}'")
                for sql in statements:
                    await conn.execute(sql)
            return
        except asyncpg.LockNotAvailableError:
            if attempt == LOCK_ATTEMPTS:
                raise
            log.warning("%s: lock not available (attempt %s/%s), retrying", what, attempt,
                        LOCK_ATTEMPTS)
            await asyncio.sleep(0.5 * attempt)


def _attach_statements(name: str, lower: datetime | None, upper: datetime | None,
                       *, has_default: bool) -> list[str]:
    lo = "minvalue" if lower is None else _literal(lower)
    hi = "maxvalue" if upper is None else _literal(upper)
    statements = [f"create table {SCHEMA}.{name} (like {PARENT})"]
    if has_default and lower is not None and upper is not None:
        # rows that landed in DEFAULT for this range move with the attach (one transaction); the
        # attach's scan of DEFAULT then finds none
        statements.append(
            f"""
            with moved as (
                delete from {SCHEMA}.{DEFAULT_PARTITION}
                where scraped_at >= {lo} and scraped_at < {hi}
                returning *
            )
            insert into {SCHEMA}.{name} select * from moved
            """  # noqa: S608 (bounds are formatted datetimes)
        )
    statements.append(
        f"alter table {PARENT} attach partition {SCHEMA}.{name} for values from ({lo}) to ({hi})"
    )
    return statements


async def create_range_partition(conn: asyncpg.Connection, name: str, lower: datetime | None,
                                 upper: datetime | None, *, has_default: bool) -> None:
    """LIKE + ATTACH in one short transaction (the parent's indexes cascade to the new, empty
    table)."""
    await run_locked(conn, f"create partition {name}",
                             _attach_statements(name, lower, upper, has_default=has_default))
    log.info("created partition %s", name)


async def ensure_default_partition(conn: asyncpg.Connection) -> bool:
    if any(p.is_default for p in await list_partitions(conn)):
        return False
    await run_locked(conn, "create default partition", [
        f"create table if not exists {SCHEMA}.{DEFAULT_PARTITION} (like {PARENT})",
        f"alter table {PARENT} attach partition {SCHEMA}.{DEFAULT_PARTITION} default",
    ])
    log.info("created partition %s", DEFAULT_PARTITION)
    return True


async def ensure_partitions(conn: asyncpg.Connection, months_ahead: int = MONTHS_AHEAD,
                            *, now: datetime | None = None) -> list[str]:
    """Create the monthly partitions for the current month and `months_ahead` months after it
    (those not covered yet), and the DEFAULT partition. Returns the names created.

    A no-op on a plain (not yet converted) or missing raw table: `pricecat migrate` converts it.
    """
    if await table_kind(conn) != "p":
        return []
    created: list[str] = []
    current = month_start(now or datetime.now(UTC))
    for k in range(months_ahead + 1):
        lo, hi = add_months(current, k), add_months(current, k + 1)
        parts = await list_partitions(conn)
        ranged = [p for p in parts if not p.is_default]
        if any(p.covers(lo, hi) for p in ranged):
            continue
        clash = [p.name for p in ranged if p.overlaps(lo, hi)]
        if clash:
            log.warning("month %s partly covered by %s: not creating a partition for it",
                        f"{lo:%Y-%m}", ", ".join(clash))
            continue
        name = month_partition_name(lo)
        await create_range_partition(conn, name, lo, hi,
                                     has_default=any(p.is_default for p in parts))
        created.append(name)
    if await ensure_default_partition(conn):
        created.append(DEFAULT_PARTITION)
    return created


# --- fresh database ------------------------------------------------------------------------------


async def create_partitioned_table(conn: asyncpg.Connection, *, now: datetime | None = None,
                                   months_ahead: int = MONTHS_AHEAD) -> None:
    """A fresh database: the partitioned parent, a history partition for everything before next
    month (a seed of past months lands there), the months ahead and DEFAULT."""
    current = month_start(now or datetime.now(UTC))
    cutoff = add_months(current, 1)
    async with conn.transaction():
        await conn.execute(f"create sequence {SEQUENCE} as bigint")
        await conn.execute(PARENT_DDL)
        await conn.execute(f"alter sequence {SEQUENCE} owned by {PARENT}.id")
        for sql in _attach_statements(history_partition_name(cutoff), None, cutoff,
                                      has_default=False):
            await conn.execute(sql)
        for k in range(1, months_ahead + 1):
            lo = add_months(current, k)
            for sql in _attach_statements(month_partition_name(lo), lo, add_months(lo, 1),
                                          has_default=False):
                await conn.execute(sql)
        await conn.execute(f"create table {SCHEMA}.{DEFAULT_PARTITION} (like {PARENT})")
        await conn.execute(
            f"alter table {PARENT} attach partition {SCHEMA}.{DEFAULT_PARTITION} default"
        )


# --- converting the plain table ------------------------------------------------------------------

CHECK_PREFIX = f"{TABLE}_before_"


@dataclass
class ConversionReport:
    history_partition: str
    cutoff: datetime
    next_id: int
    swap_seconds: float
    views_recreated: list[str]


async def _index_valid(conn: asyncpg.Connection, name: str) -> bool | None:
    valid: bool | None = await conn.fetchval(
        """
        select i.indisvalid
        from pg_index i
        inner join pg_class c on c.oid = i.indexrelid
        inner join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = $1 and c.relname = $2
        """,
        SCHEMA,
        name,
    )
    return valid


async def _dependent_views(conn: asyncpg.Connection) -> list[tuple[str, str]]:
    """(qualified name, definition) of the views reading the raw table, deparsed with every name
    schema-qualified, so they can be re-pointed at the new parent after the rename."""
    async with conn.transaction():
        await conn.execute("set local search_path = pg_catalog")
        rows = await conn.fetch(
            """
            select distinct v.oid::regclass::text as name, pg_get_viewdef(v.oid) as definition
            from pg_depend d
            inner join pg_rewrite r on r.oid = d.objid
            inner join pg_class v on v.oid = r.ev_class
            where d.classid = 'pg_rewrite'::regclass
                and d.refobjid = $1::regclass
                and v.relkind = 'v'
                and v.oid <> $1::regclass
            """,
            PARENT,
        )
    return [(r["name"], r["definition"]) for r in rows]


async def convert_to_partitioned(conn: asyncpg.Connection, *, now: datetime | None = None,
                                 months_ahead: int = MONTHS_AHEAD) -> ConversionReport:
    """Turn the plain raw table into the partitioned layout without rewriting a row.

    1. `CHECK (scraped_at < cutoff) NOT VALID` (a catalog-only change), then VALIDATE it (a scan
       under SHARE UPDATE EXCLUSIVE: inserts continue). cutoff = the first day of the month after
       max(now + 1 day, newest scraped_at), so the scraper's rows keep satisfying it.
    2. `CREATE UNIQUE INDEX CONCURRENTLY (id, scraped_at)` on the old table: the new primary key's
       index for this partition.
    3. One short transaction (lock_timeout, retried): take the old table's lock, drop its identity
       (PG 15 refuses identity columns in partitions) and create `product_price_snapshots_id_seq`
       past its last value, swap the primary key for the (id, scraped_at) one, rename the table and
       its indexes, create the partitioned parent under the old name (its indexes are created while
       it has no partitions: instant), ATTACH the old table FROM (MINVALUE) TO (cutoff) (the
       validated CHECK lets Postgres skip the scan, its existing indexes are attached instead of
       built), drop the CHECK, create the months ahead and DEFAULT, grant the API role, and
       re-point views that read the table.
    """
    started_at = now or datetime.now(UTC)
    newest: datetime | None = await conn.fetchval(
        f"select max(scraped_at) from {PARENT}"  # noqa: S608 (constant)
    )
    base = started_at + timedelta(days=1)
    if newest is not None and newest > base:
        base = newest
    cutoff = add_months(month_start(base), 1)
    history = history_partition_name(cutoff)
    check = f"{history}_check"
    unique_index = f"{history}_pkey"

    # 1. the CHECK that lets ATTACH skip its validation scan
    stale = await conn.fetch(
        """
        select conname from pg_constraint
        where conrelid = $1::regclass and contype = 'c' and conname like $2 and conname <> $3
        """,
        PARENT,
        CHECK_PREFIX + "%",
        check,
    )
    for row in stale:  # an interrupted earlier run with another cutoff
        await run_locked(conn, "drop stale check",
                                 [f"alter table {PARENT} drop constraint {row['conname']}"])
    has_check = await conn.fetchval(
        "select convalidated from pg_constraint where conrelid = $1::regclass and conname = $2",
        PARENT,
        check,
    )
    if has_check is None:
        await run_locked(conn, "add check", [
            f"alter table {PARENT} add constraint {check} "
            f"check (scraped_at < {_literal(cutoff)}) not valid"
        ])
    if not has_check:
        log.info("validating %s (a scan; writers are not blocked)", check)
        await conn.execute(f"alter table {PARENT} validate constraint {check}")

    # 2. the new primary key's index, built without blocking writers
    if await _index_valid(conn, unique_index) is False:
        await conn.execute(f"drop index concurrently if exists {SCHEMA}.{unique_index}")
    log.info("building %s (concurrently)", unique_index)
    await conn.execute(
        f"create unique index concurrently if not exists {unique_index} "
        f"on {PARENT} (id, scraped_at)"
    )

    # which of the raw indexes the old table has, valid: they are attached, not rebuilt
    present = [
        (name, definition) for name, definition in RAW_INDEXES
        if await _index_valid(conn, name)
    ]
    views = await _dependent_views(conn)
    role = await conn.fetchval("select 1 from pg_roles where rolname = $1", API_ROLE)

    # 3. the swap
    next_id = 0
    swap_seconds = 0.0
    for attempt in range(1, LOCK_ATTEMPTS + 1):
        try:
            t0 = asyncio.get_running_loop().time()
            async with conn.transaction():
                await conn.execute(f"set local lock_timeout = '{LOCK_TIMEOUT}'")
                await conn.execute(f"lock table {PARENT} in access exclusive mode")
                next_id = await _swap(conn, cutoff, history, check, unique_index, present)
                months = [
                    add_months(cutoff, k)
                    for k in range(max(0, _months_between(cutoff, started_at) + months_ahead + 1))
                ]
                for lo in months:
                    for sql in _attach_statements(month_partition_name(lo), lo,
                                                  add_months(lo, 1), has_default=False):
                        await conn.execute(sql)
                for sql in (
                    f"create table {SCHEMA}.{DEFAULT_PARTITION} (like {PARENT})",
                    f"alter table {PARENT} attach partition {SCHEMA}.{DEFAULT_PARTITION} default",
                ):
                    await conn.execute(sql)
                if role:
                    await conn.execute(f"grant select on {PARENT} to {API_ROLE}")
                for name, definition in views:
                    await conn.execute(f"create or replace view {name} as {definition}")
            swap_seconds = asyncio.get_running_loop().time() - t0
            break
        except asyncpg.LockNotAvailableError:
            if attempt == LOCK_ATTEMPTS:
                raise
            log.warning("conversion swap: lock not available (attempt %s/%s), retrying",
                        attempt, LOCK_ATTEMPTS)
            await asyncio.sleep(0.5 * attempt)
    log.info("converted %s to monthly partitions: %s holds everything before %s "
             "(swap %.3f s)", PARENT, history, f"{cutoff:%Y-%m-%d}", swap_seconds)
    return ConversionReport(history, cutoff, next_id, swap_seconds, [v for v, _ in views])


def _months_between(cutoff: datetime, now: datetime) -> int:
    """Whole months from `cutoff` to the month of `now` (negative when now is before cutoff)."""
    current = month_start(now)
    return (current.year - cutoff.year) * 12 + current.month - cutoff.month


async def _swap(conn: asyncpg.Connection, cutoff: datetime, history: str, check: str,
                unique_index: str, present: list[tuple[str, str]]) -> int:
    """Inside the swap transaction, with the old table locked. Returns the sequence's next id."""
    identity = await conn.fetchval(
        """
        select a.attidentity <> ''
        from pg_attribute a where a.attrelid = $1::regclass and a.attname = 'id'
        """,
        PARENT,
    )
    old_seq: str | None = await conn.fetchval("select pg_get_serial_sequence($1, 'id')", PARENT)
    last = 0
    if old_seq:
        row = await conn.fetchrow(f"select last_value, is_called from {old_seq}")  # noqa: S608
        if row is not None:
            last = row["last_value"] if row["is_called"] else row["last_value"] - 1
    max_id = await conn.fetchval(f"select max(id) from {PARENT}") or 0  # noqa: S608
    next_id = max(last, max_id) + 1
    if identity:
        await conn.execute(f"alter table {PARENT} alter column id drop identity")  # drops old_seq
    else:
        await conn.execute(f"alter table {PARENT} alter column id drop default")
        if old_seq:
            await conn.execute(f"drop sequence {old_seq}")
    old_pk = await conn.fetchval(
        "select conname from pg_constraint where conrelid = $1::regclass and contype = 'p'",
        PARENT,
    )
    if old_pk:
        await conn.execute(f"alter table {PARENT} drop constraint {old_pk}")
    await conn.execute(
        f"alter table {PARENT} add constraint {unique_index} primary key using index {unique_index}"
    )
    await conn.execute(f"alter table {PARENT} rename to {history}")
    for name, _ in present:
        await conn.execute(
            f"alter index {SCHEMA}.{name} rename to {partition_index_name(history, name)}"
        )
    await conn.execute(f"create sequence {SEQUENCE} as bigint start with {int(next_id)}")
    await conn.execute(PARENT_DDL)
    await conn.execute(f"alter sequence {SEQUENCE} owned by {PARENT}.id")
    for name, definition in present:
        # the parent has no partition yet: instant; the ATTACH below adopts the old indexes
        await conn.execute(f"create index {name} on {PARENT} {definition}")
    await conn.execute(
        f"alter table {PARENT} attach partition {SCHEMA}.{history} "
        f"for values from (minvalue) to ({_literal(cutoff)})"
    )
    await conn.execute(f"alter table {SCHEMA}.{history} drop constraint {check}")
    return int(next_id)
