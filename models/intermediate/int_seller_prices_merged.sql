{{
    config(
        materialized='incremental',
        schema='state',
        unique_key=['slug', 'seller'],
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        meta={'analyze_columns': ['slug', 'seller']},
        pre_hook=["set local work_mem = '512MB'"],
        post_hook=["{{ analyze_for_planner() }}"],
        indexes=[
            {'columns': ['slug', 'seller'], 'unique': true},
        ],
    )
}}

{#
    The incremental state of the price in force of every (slug, seller) offer with a priced
    snapshot, in the schema `state_schema` (never swapped): one row per offer holding its whole
    step function as three parallel arrays in time order (step_valid_from, step_price,
    step_snapshot_id). int_seller_prices_changed unnests it each run (and applies `as_of`).
    The price in force at t is the offer's latest snapshot at or before t with a non-NULL price;
    of several priced snapshots with the same scraped_at only the highest id is in force; a step
    starts where the price in force changes.

    Incrementally, only the offers touched by this run's arrivals (int_price_snapshots_arrived,
    priced and accepted) are rewritten (delete+insert on slug, seller). If every arrival of an
    offer is strictly later than `last_priced_at` (the latest priced scraped_at the offer's state
    has seen), its steps are EXTENDED: the arrivals' in-force rows are compared with the last
    stored step's price. Otherwise (a late row, or a row at the same scraped_at as a seen one,
    which may win the tie) the offer is recomputed from its whole priced history. On a full
    rebuild (`--full-refresh`, or `state_full_rebuild` when the offer state or the ledger is
    missing) every offer is computed from the whole history by the same code.

    Runs before int_seller_offers_merged (which records the snapshot ledger; see its depends_on),
    so a failure here never lets the ledger mark rows as merged that this state has not seen; an
    arrival that this state has merged already sorts at or before `last_priced_at` and only
    recomputes its offer.
#}

{%- set full = not is_incremental() or state_full_rebuild() %}

-- read by the incremental branch only
-- depends_on: {{ ref('int_price_snapshots_arrived') }}

with

{% if full %}

    history as (
        select
            snapshot_id,
            slug,
            seller,
            price,
            scraped_at
        from {{ ref('stg_scraper__product_price_snapshots') }}
        where price is not null
    ),

{% else %}

    arrived as (
        select
            snapshot_id,
            slug,
            seller,
            price,
            scraped_at
        from {{ ref('int_price_snapshots_arrived') }}
        where
            not is_quarantined
            and price is not null
    ),

    -- offers with exactly one new priced row
    single_arrivals as (
        select max(arrived.snapshot_id) as snapshot_id
        from arrived
        group by arrived.slug, arrived.seller
        having count(*) = 1
    ),

    -- what a scrape cycle brings almost every offer: one priced row strictly later than every
    -- priced row the state has seen. Its steps are extended by one join (no sort or window):
    -- the same values the general merge below computes for a one-row batch
    appended as (
        select
            new_row.slug,
            new_row.seller,
            new_row.scraped_at as last_priced_at,
            cardinality(previous_state.step_valid_from) as kept_step_count,
            case
                when step.starts
                    then previous_state.step_valid_from || new_row.scraped_at
                else previous_state.step_valid_from
            end as step_valid_from,
            case
                when step.starts
                    then previous_state.step_price || new_row.price
                else previous_state.step_price
            end as step_price,
            case
                when step.starts
                    then previous_state.step_snapshot_id || new_row.snapshot_id
                else previous_state.step_snapshot_id
            end as step_snapshot_id,
            case
                when step.starts
                    then previous_state.step_lowest_price || least(
                        previous_state.step_lowest_price[cardinality(previous_state.step_lowest_price)],
                        new_row.price
                    )
                else previous_state.step_lowest_price
            end as step_lowest_price
        from single_arrivals
        inner join {{ ref('int_price_snapshots_arrived') }} as new_row
            on single_arrivals.snapshot_id = new_row.snapshot_id
        inner join {{ this }} as previous_state
            on new_row.slug = previous_state.slug and new_row.seller = previous_state.seller
        -- a new step starts where the price differs from the last step's
        cross join lateral (
            select new_row.price is distinct from previous_state.step_price[
                cardinality(previous_state.step_price)
            ] as starts
        ) as step
        where new_row.scraped_at > previous_state.last_priced_at
    ),

    -- the rest (new offers, several new rows, late rows) goes through the general merge
    arrived_general as (
        select arrived.*
        from arrived
        where not exists (
            select from appended
            where appended.slug = arrived.slug and appended.seller = arrived.seller
        )
    ),

    prior as (
        select
            previous_state.slug,
            previous_state.seller,
            previous_state.last_priced_at,
            previous_state.step_valid_from,
            previous_state.step_price,
            previous_state.step_snapshot_id,
            previous_state.step_lowest_price
        from {{ this }} as previous_state
        where exists (
            select from arrived_general
            where
                arrived_general.slug = previous_state.slug
                and arrived_general.seller = previous_state.seller
        )
    ),

    -- offers receiving a priced row at or before the latest priced row they have seen: a late
    -- row changes steps in the middle, a row at the same instant may win the tie
    late_offers as (
        select distinct
            prior.slug,
            prior.seller
        from prior
        inner join arrived_general
            on
                prior.slug = arrived_general.slug
                and prior.seller = arrived_general.seller
        where arrived_general.scraped_at <= prior.last_priced_at
    ),

    prior_merged as (
        select
            prior.slug,
            prior.seller,
            prior.step_valid_from,
            prior.step_price,
            prior.step_snapshot_id,
            prior.step_lowest_price,
            prior.step_price[cardinality(prior.step_price)] as last_price,
            prior.step_lowest_price[cardinality(prior.step_lowest_price)] as last_lowest_price
        from prior
        where not exists (
            select from late_offers
            where late_offers.slug = prior.slug and late_offers.seller = prior.seller
        )
    ),

    history as (
        select
            staged.snapshot_id,
            staged.slug,
            staged.seller,
            staged.price,
            staged.scraped_at
        from {{ ref('stg_scraper__product_price_snapshots') }} as staged
        inner join late_offers
            on staged.slug = late_offers.slug and staged.seller = late_offers.seller
        where staged.price is not null
        union all
        select
            arrived_general.snapshot_id,
            arrived_general.slug,
            arrived_general.seller,
            arrived_general.price,
            arrived_general.scraped_at
        from arrived_general
        where not exists (
            select from late_offers
            where late_offers.slug = arrived_general.slug and late_offers.seller = arrived_general.seller
        )
    ),

{% endif %}

-- of several priced snapshots at the same instant only the highest id is ever in force; one sort
-- by (slug, seller, scraped_at, snapshot_id) serves both windows ("C" keys sort faster)
marked as (
    select
        snapshot_id,
        price,
        scraped_at,
        slug collate "C" as slug,
        seller collate "C" as seller,
        lead(scraped_at) over offer_history as next_scraped_at
    from history
    window
        offer_history as (
            partition by slug collate "C", seller collate "C"
            order by scraped_at asc, snapshot_id asc
        )
),

in_force as (
    select
        marked.snapshot_id,
        marked.price,
        marked.scraped_at,
        marked.slug,
        marked.seller,
        {% if full %}
            lag(marked.price) over offer_history as previous_price,
            min(marked.price) over offer_history_so_far as lowest_price
        {% else %}
            case
                when row_number() over offer_history = 1 then prior_merged.last_price
                else lag(marked.price) over offer_history
            end as previous_price,
            least(prior_merged.last_lowest_price, min(marked.price) over offer_history_so_far) as lowest_price
        {% endif %}
    from marked
    {% if not full %}
        left join prior_merged
            on marked.slug = prior_merged.slug and marked.seller = prior_merged.seller
    {% endif %}
    where marked.next_scraped_at is distinct from marked.scraped_at
    window
        offer_history as (partition by marked.slug, marked.seller order by marked.scraped_at asc),
        offer_history_so_far as (offer_history rows between unbounded preceding and current row)
),

batch as (
    select
        slug,
        seller,
        max(scraped_at) as last_priced_at,
        coalesce(
            array_agg(scraped_at order by scraped_at) filter (where price is distinct from previous_price),
            '{}'
        ) as step_valid_from,
        coalesce(
            array_agg(price order by scraped_at) filter (where price is distinct from previous_price),
            '{}'
        ) as step_price,
        coalesce(
            array_agg(snapshot_id order by scraped_at) filter (where price is distinct from previous_price),
            '{}'
        ) as step_snapshot_id,
        coalesce(
            array_agg(lowest_price order by scraped_at) filter (where price is distinct from previous_price),
            '{}'
        ) as step_lowest_price
    from in_force
    group by slug, seller
),

final as (
    select
        batch.slug collate "default" as slug, -- noqa: RF02, RF03
        batch.seller collate "default" as seller, -- noqa: RF02, RF03
        batch.last_priced_at,
        {% if full %}
            0 as kept_step_count,
            batch.step_valid_from,
            batch.step_price,
            batch.step_snapshot_id,
            batch.step_lowest_price
        {% else %}
            coalesce(cardinality(prior_merged.step_valid_from), 0) as kept_step_count,
            coalesce(prior_merged.step_valid_from, '{}') || batch.step_valid_from as step_valid_from,
            coalesce(prior_merged.step_price, '{}') || batch.step_price as step_price,
            coalesce(prior_merged.step_snapshot_id, '{}') || batch.step_snapshot_id as step_snapshot_id,
            coalesce(prior_merged.step_lowest_price, '{}') || batch.step_lowest_price as step_lowest_price
        {% endif %}
    from batch
    {% if not full %}
        left join prior_merged
            on batch.slug = prior_merged.slug and batch.seller = prior_merged.seller
        union all
        select * from appended
    {% endif %}
)

select * from final
