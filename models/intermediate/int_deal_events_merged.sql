{{
    config(
        materialized='incremental',
        schema='state',
        unique_key=['slug', 'seller'],
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        meta={'analyze_columns': ['slug', 'seller']},
        pre_hook=["set local work_mem = '512MB'", "{{ clear_state_on_full_rebuild() }}"],
        post_hook=["{{ analyze_for_planner() }}"],
        indexes=[
            {'columns': ['slug', 'seller'], 'unique': true},
        ],
    )
}}

{#
    The incremental state of the deal events (catalog_deal_events) of every (slug, seller) offer,
    in the schema `state_schema` (never swapped): one row per offer holding its events as parallel
    arrays in time order, over the whole history (as_of is applied by the mart). An event depends
    only on the history up to its own time, so a run only adds the events of what is new:
    - price events (new_lowest_ever, new_lowest_90d) come from the offer's steps in
      int_seller_prices_merged, which tells how many leading steps it kept unchanged in this run
      (`kept_step_count`: all of them when it extended the offer, none when a late row made it
      recompute the offer). The events of the kept steps are kept; the steps after them get
      their events computed (the 90-day window reads only the steps in force in those 90 days,
      found by binary search with width_bucket; "lowest ever" reads the running minimum).
    - back_in_stock (an available snapshot after one that was not) comes from the accepted
      snapshots: this run's arrivals, the first compared with the availability of the offer's
      latest snapshot in int_seller_offers_merged (read before that model merges this run). An
      arrival sorting before that latest snapshot (scraped_at, then id: a late row) makes the
      offer's availability events recompute from its whole known history (the rows
      int_seller_offers_merged reads). A row arriving again (its run failed before the ledger
      write) replaces its own event.
    Only offers with a new or recomputed event are rewritten (delete+insert on slug, seller);
    an offer left without events keeps a row with empty arrays. On a full rebuild
    (`state_full_rebuild`) every offer is computed from all its steps and its whole history.

    Runs before int_seller_offers_merged (which records the snapshot ledger; see its depends_on),
    so a failure here never lets the ledger mark rows as merged that this state has not seen:
    they arrive again, and int_seller_prices_merged recomputes their offers (kept_step_count 0).
#}

{%- set rebuild = state_full_rebuild() %}
{%- set full = not is_incremental() or rebuild %}
{%- set offer_state = adapter.quote(generate_schema_name('state', none) | trim) ~ '.int_seller_offers_merged' %}


-- read by the incremental branch only
-- depends_on: {{ ref('int_price_snapshots_arrived') }}

with

arrived as (
    select
        snapshot_id,
        slug,
        seller,
        price,
        is_available,
        is_quarantined,
        scraped_at
    from {{ ref('int_price_snapshots_arrived') }}
),

-- the raw rows int_seller_offers_merged reads (so does a recompute here): at or below this bound,
-- in the ledger, or arriving now
lower_bound as (
    {{ snapshot_lower_bound(rebuild) }}
),

steps_state as (
    select
        slug,
        seller,
        kept_step_count,
        step_valid_from,
        step_price,
        step_snapshot_id,
        step_lowest_price
    from {{ ref('int_seller_prices_merged') }}
),

-- the offers whose steps changed in this run past the steps kept (all offers on a full rebuild)
changed_steps as (
    select steps_state.*
    from steps_state
    {% if not full %}
        where
            cardinality(steps_state.step_valid_from) > steps_state.kept_step_count
            and exists (
                select from arrived
                where
                    arrived.slug = steps_state.slug
                    and arrived.seller = steps_state.seller
                    and not arrived.is_quarantined
                    and arrived.price is not null
            )
    {% endif %}
),

new_steps as (
    select
        changed_steps.slug,
        changed_steps.seller,
        changed_steps.step_snapshot_id[step.step_number] as snapshot_id,
        changed_steps.step_price[step.step_number] as price,
        changed_steps.step_lowest_price[step.step_number - 1] as earlier_lowest_price,
        -- the prices in force during the 90 days before the step: the steps from the one in force
        -- at valid_from - 90 days (its end lies inside the window) to the previous one
        (
            select min(window_step.price)
            from unnest(
                changed_steps.step_price[
                    greatest(
                        width_bucket(
                            changed_steps.step_valid_from[step.step_number] - interval '90 days',
                            changed_steps.step_valid_from
                        ),
                        1
                    ):step.step_number - 1
                ]
            ) as window_step (price)
        ) as window_lowest_price,
        changed_steps.step_valid_from[step.step_number] as valid_from
    from changed_steps
    -- an offer's first step is no event
    cross join lateral generate_series(
        {% if full %}2{% else %}greatest(changed_steps.kept_step_count + 1, 2){% endif %},
        cardinality(changed_steps.step_valid_from)
    ) as step (step_number)
),

price_events as (
    select
        slug,
        seller,
        'new_lowest_ever' as event_type,
        snapshot_id,
        price,
        valid_from as happened_at
    from new_steps
    where price < earlier_lowest_price
    union all
    select
        slug,
        seller,
        'new_lowest_90d' as event_type,
        snapshot_id,
        price,
        valid_from as happened_at
    from new_steps
    where price < window_lowest_price
),

{% if full %}

    availability_history as (
        select
            staged.snapshot_id,
            staged.slug,
            staged.seller,
            staged.price,
            staged.is_available,
            staged.scraped_at,
            null::boolean as prior_is_available
        from {{ ref('stg_scraper__product_price_snapshots') }} as staged
        where {{ is_known_snapshot('staged.snapshot_id', rebuild) }}
    ),

{% else %}

    -- each accepted arrival with the offer state before this run merges into it: the latest
    -- snapshot's availability, and whether the arrival sorts before that snapshot (a late row,
    -- int_seller_offers_merged's rule)
    arrived_accepted as (
        select
            arrived.snapshot_id,
            arrived.slug,
            arrived.seller,
            arrived.price,
            arrived.is_available,
            arrived.scraped_at,
            prior_offers.is_available as prior_is_available,
            coalesce(
                (arrived.scraped_at, arrived.snapshot_id) < (prior_offers.last_seen_at, prior_offers.latest_snapshot_id),
                false
            ) as is_late
        from arrived
        left join {{ offer_state }} as prior_offers
            on arrived.slug = prior_offers.slug and arrived.seller = prior_offers.seller
        where not arrived.is_quarantined
    ),

    -- their availability events are recomputed from the whole known history
    late_offers as (
        select distinct
            slug,
            seller
        from arrived_accepted
        where is_late
    ),

    availability_history as (
        select
            staged.snapshot_id,
            staged.slug,
            staged.seller,
            staged.price,
            staged.is_available,
            staged.scraped_at,
            null::boolean as prior_is_available
        from {{ ref('stg_scraper__product_price_snapshots') }} as staged
        inner join late_offers
            on staged.slug = late_offers.slug and staged.seller = late_offers.seller
        where {{ is_known_snapshot('staged.snapshot_id', rebuild) }}
        union all
        select
            arrived_accepted.snapshot_id,
            arrived_accepted.slug,
            arrived_accepted.seller,
            arrived_accepted.price,
            arrived_accepted.is_available,
            arrived_accepted.scraped_at,
            arrived_accepted.prior_is_available
        from arrived_accepted
        where not exists (
            select from late_offers
            where late_offers.slug = arrived_accepted.slug and late_offers.seller = arrived_accepted.seller
        )
    ),

{% endif %}

availability_changes as (
    select
        snapshot_id,
        slug,
        seller,
        price,
        is_available,
        scraped_at,
        case
            when row_number() over offer_history = 1 then prior_is_available
            else lag(is_available) over offer_history
        end as was_available
    from availability_history
    window offer_history as (
        partition by slug collate "C", seller collate "C"
        order by scraped_at asc, snapshot_id asc
    )
),

availability_events as (
    select
        slug,
        seller,
        'back_in_stock' as event_type,
        snapshot_id,
        price,
        scraped_at as happened_at
    from availability_changes
    where is_available and not was_available
),

{% if full %}

    events as (
        select * from price_events
        union all
        select * from availability_events
    ),

    offers as (
        select
            slug,
            seller
        from steps_state
        union
        select
            slug,
            seller
        from availability_events
    ),

{% else %}

    -- offers rewritten in this run: a step changed, an availability event is new, or a late row
    offers as (
        select
            slug,
            seller
        from changed_steps
        union
        select
            slug,
            seller
        from availability_events
        union
        select
            slug,
            seller
        from late_offers
    ),

    prior_events as (
        select
            previous_state.slug,
            previous_state.seller,
            prior_event.event_type,
            prior_event.snapshot_id,
            prior_event.price,
            prior_event.happened_at
        from {{ this }} as previous_state
        cross join lateral unnest(
            previous_state.event_type,
            previous_state.event_snapshot_id,
            previous_state.event_price,
            previous_state.event_happened_at
        ) as prior_event (event_type, snapshot_id, price, happened_at)
        where exists (
            select from offers
            where offers.slug = previous_state.slug and offers.seller = previous_state.seller
        )
    ),

    -- price events of the steps kept; availability events of offers not recomputed, except those
    -- of rows arriving again
    kept_events as (
        select prior_events.*
        from prior_events
        left join changed_steps
            on prior_events.slug = changed_steps.slug and prior_events.seller = changed_steps.seller
        where
            case
                when prior_events.event_type = 'back_in_stock'
                    then
                        not exists (
                            select from late_offers
                            where late_offers.slug = prior_events.slug and late_offers.seller = prior_events.seller
                        )
                        and not exists (
                            select from arrived_accepted
                            where arrived_accepted.snapshot_id = prior_events.snapshot_id
                        )
                else
                    changed_steps.slug is null
                    or prior_events.happened_at <= changed_steps.step_valid_from[changed_steps.kept_step_count]
            end
    ),

    events as (
        select * from kept_events
        union all
        select * from price_events
        union all
        select * from availability_events
    ),

{% endif %}

offer_events as (
    select
        slug,
        seller,
        array_agg(event_type order by happened_at, event_type, snapshot_id) as event_type,
        array_agg(snapshot_id order by happened_at, event_type, snapshot_id) as event_snapshot_id,
        array_agg(price order by happened_at, event_type, snapshot_id) as event_price,
        array_agg(happened_at order by happened_at, event_type, snapshot_id) as event_happened_at
    from events
    group by slug, seller
),

final as (
    select
        offers.slug,
        offers.seller,
        coalesce(offer_events.event_type, '{}') as event_type,
        coalesce(offer_events.event_snapshot_id, '{}') as event_snapshot_id,
        coalesce(offer_events.event_price, '{}') as event_price,
        coalesce(offer_events.event_happened_at, '{}') as event_happened_at
    from offers
    left join offer_events
        on offers.slug = offer_events.slug and offers.seller = offer_events.seller
)

select * from final
