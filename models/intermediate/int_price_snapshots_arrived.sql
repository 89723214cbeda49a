{{
    config(
        materialized='table',
        indexes=[
            {'columns': ['snapshot_id'], 'unique': true},
        ],
    )
}}

{#
    The raw snapshots this run merges into the incremental state: every raw id above the lower
    bound `max(ledger id) - snapshot_id_overlap` that the snapshot ledger does not hold yet
    (quarantined rows included, flagged, so they are recorded as seen). Rows are found by id
    (insertion order), never by scraped_at, so a late row with an old scraped_at arrives like any
    other; the overlap catches ids that committed after a higher id was merged. On a full rebuild
    (`state_full_rebuild`) the arrivals are the ids above `max(raw id) - snapshot_id_overlap`: the
    rows the ledger then records. docs/DESIGN.md, "Incremental state", says why this is safe.
    Incrementally the ledger's max id is read when this model compiles and written into the SQL
    as a literal (nothing changes the ledger before int_seller_offers_merged's post-hook, later in
    the run): behind a subquery the planner guesses a third of the raw table and scans all of it
    in parallel instead of reading the ids above the bound through the primary key. (Looking the
    new ids up first and passing them as `= any(array(...))` is no better: the planner then
    expects a handful of rows and drops the memoized availability lookup, 10x slower.) The lowest
    raw id above the bound that the ledger lacks is read the same way and written in as a second
    bound: every id between the two is merged already, so only the new rows go through
    staging (the overlap's ~100k merged rows did, each run, before); a row that commits later
    with a lower id is not in the ledger and arrives in a later run, as the overlap ensures.
    A table in the build schema: read by the state models in `catalog_state`
    (int_seller_offers_merged, int_seller_prices_merged, int_quarantined_snapshots_merged,
    int_availability_unmatched_merged) and by the ledger post-hook. `availability_rule_order`
    (NULL = no rule matched; NULL on quarantined rows) and `quarantine_reason` (NULL on accepted
    rows) are the staging values.
#}

{%- set full = state_full_rebuild() %}
{%- set overlap = var('snapshot_id_overlap') %}
{%- set ledger_max = 0 %}
{%- set first_new = none %}
{%- if execute and not full %}
    {%- set ledger_max = run_query(
        'select coalesce(max(snapshot_id), 0) from ' ~ snapshot_ledger()
    ).columns[0].values()[0] %}
    {#- the lowest raw id above the bound that the ledger lacks: ids below it are all merged, so
        staging (the costly part) starts there; read by the raw table's and the ledger's keys #}
    {%- set first_new = run_query(
        'select min(raw.id) from ' ~ source('scraper', 'product_price_snapshots') ~ ' as raw'
        ~ ' where raw.id > ' ~ ledger_max ~ '::bigint - ' ~ overlap
        ~ ' and not exists (select from ' ~ snapshot_ledger() ~ ' as ledger'
        ~ ' where ledger.snapshot_id = raw.id)'
    ).columns[0].values()[0] %}
{%- endif %}

with

accepted as (
    select
        snapshot_id,
        slug,
        seller,
        product_code,
        product_name,
        availability_raw,
        url,
        image_url,
        description,
        price,
        is_available,
        is_preorder,
        has_url,
        has_image_url,
        has_description,
        has_categories,
        false as is_quarantined,
        scraped_at,
        categories_raw,
        availability_rule_order,
        null::text as quarantine_reason
    from {{ ref('stg_scraper__product_price_snapshots') }}
),

quarantined as (
    select
        snapshot_id,
        slug,
        seller,
        null::text as product_code,
        null::text as product_name,
        null::text as availability_raw,
        null::text as url,
        null::text as image_url,
        null::text as description,
        price,
        false as is_available,
        false as is_preorder,
        false as has_url,
        false as has_image_url,
        false as has_description,
        false as has_categories,
        true as is_quarantined,
        scraped_at,
        null::text as categories_raw,
        null::integer as availability_rule_order,
        reason as quarantine_reason
    from {{ ref('stg_scraper__quarantined_snapshots') }}
),

snapshots as (
    select * from accepted
    union all
    select * from quarantined
),

lower_bound as (
    {% if full %}
        select coalesce(max(snapshots.snapshot_id), 0) - {{ overlap }} as snapshot_id
        from snapshots
    {% else %}
        select {{ ledger_max }}::bigint - {{ overlap }} as snapshot_id
    {% endif %}
),

final as (
    select snapshots.*
    from snapshots
    where
        {% if full %}
            snapshots.snapshot_id > (select lower_bound.snapshot_id from lower_bound)
        {% else %}
            snapshots.snapshot_id > {{ ledger_max }}::bigint - {{ overlap }}
            {% if first_new is not none %}
                -- behind a one-row subquery: the planner guesses a third of the range above
                -- (as a literal past the raw table's statistics it guessed ~20 rows and dropped
                -- the memoized availability lookup: 4.7 s instead of 0.4 s for one cycle)
                and snapshots.snapshot_id >= (select {{ first_new }}::bigint)
            {% endif %}
    {% endif %}
    {% if not full %}
            and not exists (
                select from {{ snapshot_ledger() }} as ledger
                where ledger.snapshot_id = snapshots.snapshot_id
            )
        {% endif %}
)

select * from final
