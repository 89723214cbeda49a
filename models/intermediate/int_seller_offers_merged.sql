{{
    config(
        materialized='incremental',
        schema='state',
        unique_key=['slug', 'seller'],
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        meta={'analyze_columns': ['slug', 'seller']},
        pre_hook=["set local work_mem = '1GB'", "{{ create_snapshot_ledger() }}"],
        post_hook=["{{ record_merged_snapshots() }}", "{{ analyze_for_planner() }}"],
        indexes=[
            {'columns': ['slug', 'seller'], 'unique': true},
        ],
    )
}}

{#
    The incremental state of every (slug, seller) offer, in the schema `state_schema` (never
    swapped): catalog_slug_seller_summary is rebuilt from it each run. Incrementally, only the
    offers touched by this run's arrivals (int_price_snapshots_arrived) are rewritten
    (delete+insert on slug, seller), by MERGING the new rows into the offer's state: the new rows
    are numbered after the offer's latest snapshot, whose price and availability stand in as the
    "previous" values of the first new row, so the change points extend the stored ones. An offer
    that receives a late row (one that sorts before its latest snapshot by scraped_at, then id) is
    recomputed from its whole history instead. On a full rebuild (`state_full_rebuild`) every
    offer is computed from the whole history by the same code (no prior state).
    History reads take only rows this run knows (ids at or below the lower bound, in the ledger,
    or arriving now): a row committed after int_price_snapshots_arrived read the raw table
    arrives in the next run, never twice.

    change_points: [scraped_at, price, is_available] of the first snapshot and of every snapshot
    whose price or availability differs from the one before; price_points adds the latest
    snapshot when latest_is_change_point is false.
#}

{%- set full = not is_incremental() or state_full_rebuild() %}

-- runs after the other state models, so a failure there never lets the ledger (this model's
-- post-hook) mark rows as merged that they have not seen
-- depends_on: {{ ref('int_seller_prices_merged') }}
-- depends_on: {{ ref('int_deal_events_merged') }}
-- depends_on: {{ ref('int_quarantined_snapshots_merged') }}
-- depends_on: {{ ref('int_availability_unmatched_merged') }}

with

arrived as (
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
        is_quarantined,
        scraped_at,
        categories_raw
    from {{ ref('int_price_snapshots_arrived') }}
),

-- ids at or below this were merged by earlier runs (or, on a full rebuild, are read now)
lower_bound as (
    {{ snapshot_lower_bound(full) }}
),

snapshots as (
    select
        snapshot_id,
        slug,
        seller,
        product_code,
        price,
        is_available,
        is_preorder,
        has_url,
        has_image_url,
        has_description,
        has_categories,
        scraped_at
    from {{ ref('stg_scraper__product_price_snapshots') }}
    where {{ is_known_snapshot('snapshot_id', full) }}
),

{% if full %}

    history as (
        select * from snapshots
    ),

{% else %}

    arrived_accepted as (
        select *
        from arrived
        where not is_quarantined
    ),

    -- offers with exactly one new row
    single_arrivals as (
        select max(arrived_accepted.snapshot_id) as snapshot_id
        from arrived_accepted
        group by arrived_accepted.slug, arrived_accepted.seller
        having count(*) = 1
    ),

    -- what a scrape cycle brings almost every offer: one new row that sorts after the offer's
    -- latest snapshot. It is merged by one join (no sort, window or text lookup): the same values
    -- the general merge below computes for a one-row batch, written out for that case
    appended as (
        select
            new_row.slug,
            new_row.seller,
            new_row.product_name,
            new_row.availability_raw,
            case when new_row.has_url then new_row.url else previous_state.url end as url,
            case
                when new_row.has_image_url then new_row.image_url else previous_state.image_url
            end as image_url,
            case
                when new_row.has_description then new_row.description
                else previous_state.description
            end as description,
            case
                when new_row.has_categories then new_row.categories_raw
                else previous_state.categories_raw
            end as categories_raw,
            new_row.snapshot_id as latest_snapshot_id,
            new_row.price as current_price,
            coalesce(new_row.price, previous_state.last_known_price) as last_known_price,
            least(new_row.price, previous_state.min_price) as min_price,
            greatest(new_row.price, previous_state.max_price) as max_price,
            previous_state.snapshot_count + 1 as snapshot_count,
            new_row.is_available,
            new_row.is_preorder,
            (
                new_row.price is distinct from previous_state.current_price
                or new_row.is_available is distinct from previous_state.is_available
            ) as latest_is_change_point,
            case
                when previous_state.min_price is null or new_row.price < previous_state.min_price
                    then case when new_row.price is not null then new_row.scraped_at end
                when new_row.price is null or previous_state.min_price < new_row.price
                    then previous_state.lowest_price_at
                else least(new_row.scraped_at, previous_state.lowest_price_at)
            end as lowest_price_at,
            least(new_row.scraped_at, previous_state.first_seen_at) as first_seen_at,
            new_row.scraped_at as last_seen_at,
            case
                when
                    new_row.product_code is null
                    or new_row.product_code = any(previous_state.product_codes)
                    then previous_state.product_codes
                else array(
                    select distinct merged_codes.product_code
                    from unnest(
                        previous_state.product_codes || new_row.product_code
                    ) as merged_codes (product_code)
                    order by merged_codes.product_code
                )
            end as product_codes,
            case
                when
                    new_row.price is distinct from previous_state.current_price
                    or new_row.is_available is distinct from previous_state.is_available
                    then previous_state.change_points || jsonb_build_array(jsonb_build_array(
                        {{ to_utc_iso8601('new_row.scraped_at') }}, new_row.price, new_row.is_available
                    ))
                else previous_state.change_points
            end as change_points,
            -- normalized only when the tag text changed (nearly never)
            case
                when
                    not new_row.has_categories
                    or new_row.categories_raw = previous_state.categories_raw
                    then previous_state.categories
                else {{ normalize_categories('new_row.categories_raw') }}
            end as categories
        from single_arrivals
        inner join {{ ref('int_price_snapshots_arrived') }} as new_row
            on single_arrivals.snapshot_id = new_row.snapshot_id
        inner join {{ this }} as previous_state
            on new_row.slug = previous_state.slug and new_row.seller = previous_state.seller
        where
            (new_row.scraped_at, new_row.snapshot_id)
            > (previous_state.last_seen_at, previous_state.latest_snapshot_id)
    ),

    -- the rest (new offers, several new rows, late rows) goes through the general merge
    arrived_general as (
        select arrived_accepted.*
        from arrived_accepted
        where not exists (
            select from appended
            where
                appended.slug = arrived_accepted.slug
                and appended.seller = arrived_accepted.seller
        )
    ),

    prior as (
        select previous_state.*
        from {{ this }} as previous_state
        where exists (
            select from arrived_general
            where
                arrived_general.slug = previous_state.slug
                and arrived_general.seller = previous_state.seller
        )
    ),

    -- offers receiving a row that sorts before their latest snapshot: recomputed from history
    late_offers as (
        select distinct
            prior.slug,
            prior.seller
        from prior
        inner join arrived_general
            on
                prior.slug = arrived_general.slug
                and prior.seller = arrived_general.seller
        where
            (arrived_general.scraped_at, arrived_general.snapshot_id)
            < (prior.last_seen_at, prior.latest_snapshot_id)
    ),

    prior_merged as (
        select prior.*
        from prior
        where not exists (
            select from late_offers
            where late_offers.slug = prior.slug and late_offers.seller = prior.seller
        )
    ),

    history as (
        select snapshots.*
        from snapshots
        inner join late_offers
            on snapshots.slug = late_offers.slug and snapshots.seller = late_offers.seller
        union all
        select
            arrived_general.snapshot_id,
            arrived_general.slug,
            arrived_general.seller,
            arrived_general.product_code,
            arrived_general.price,
            arrived_general.is_available,
            arrived_general.is_preorder,
            arrived_general.has_url,
            arrived_general.has_image_url,
            arrived_general.has_description,
            arrived_general.has_categories,
            arrived_general.scraped_at
        from arrived_general
        where not exists (
            select from late_offers
            where
                late_offers.slug = arrived_general.slug
                and late_offers.seller = arrived_general.seller
        )
    ),

{% endif %}

-- one sort by (slug, seller, scraped_at, snapshot_id) serves every window; byte-wise ("C") keys
-- sort several times faster than the linguistic default and any consistent order will do
sequenced as (
    select
        history.snapshot_id,
        history.product_code,
        history.price,
        history.is_available,
        history.is_preorder,
        history.has_url,
        history.has_image_url,
        history.has_description,
        history.has_categories,
        history.scraped_at,
        history.slug collate "C" as slug, -- noqa: RF03
        history.seller collate "C" as seller, -- noqa: RF03
        row_number() over offer_history as snapshot_number,
        count(*) over offer as last_snapshot_number,
        min(history.price) over offer as lowest_price,
        {% if full %}
            lag(history.price) over offer_history as previous_price,
            lag(history.is_available) over offer_history as previous_is_available,
            row_number() over offer_history > 1 as has_previous
        {% else %}
            case
                when row_number() over offer_history = 1 then prior_merged.current_price
                else lag(history.price) over offer_history
            end as previous_price,
            case
                when row_number() over offer_history = 1 then prior_merged.is_available
                else lag(history.is_available) over offer_history
            end as previous_is_available,
            (row_number() over offer_history > 1 or prior_merged.slug is not null) as has_previous
        {% endif %}
    from history
    {% if not full %}
        left join prior_merged
            on history.slug = prior_merged.slug and history.seller = prior_merged.seller
    {% endif %}
    window
        offer as (partition by history.slug collate "C", history.seller collate "C"),
        offer_history as (
            partition by history.slug collate "C", history.seller collate "C"
            order by history.scraped_at asc, history.snapshot_id asc
        )
),

-- position of the latest snapshot carrying each optional value
located as (
    select
        *,
        max(snapshot_number) filter (where price is not null) over offer as price_number,
        max(snapshot_number) filter (where has_url) over offer as url_number,
        max(snapshot_number) filter (where has_image_url) over offer as image_url_number,
        max(snapshot_number) filter (where has_description) over offer as description_number,
        max(snapshot_number) filter (where has_categories) over offer as categories_number,
        (
            not has_previous
            or price is distinct from previous_price
            or is_available is distinct from previous_is_available
        ) as is_change_point
    from sequenced
    window offer as (partition by slug, seller)
),

batch as (
    select
        slug,
        seller,
        max(snapshot_id) filter (where snapshot_number = last_snapshot_number) as latest_snapshot_id,
        max(snapshot_id) filter (where snapshot_number = url_number) as url_snapshot_id,
        max(snapshot_id) filter (where snapshot_number = image_url_number) as image_url_snapshot_id,
        max(snapshot_id) filter (where snapshot_number = description_number) as description_snapshot_id,
        max(snapshot_id) filter (where snapshot_number = categories_number) as categories_snapshot_id,
        max(price) filter (where snapshot_number = last_snapshot_number) as current_price,
        max(price) filter (where snapshot_number = price_number) as last_known_price,
        min(price) as min_price,
        max(price) as max_price,
        count(*) as snapshot_count,
        bool_or(is_available) filter (where snapshot_number = last_snapshot_number) as is_available,
        bool_or(is_preorder) filter (where snapshot_number = last_snapshot_number) as is_preorder,
        bool_or(is_change_point) filter (
            where snapshot_number = last_snapshot_number
        ) as latest_is_change_point,
        min(scraped_at) filter (where price = lowest_price) as lowest_price_at,
        min(scraped_at) as first_seen_at,
        max(scraped_at) as last_seen_at,
        coalesce(
            array_agg(distinct product_code order by product_code) filter (where product_code is not null),
            '{}'
        ) as product_codes,
        coalesce(
            jsonb_agg(
                jsonb_build_array({{ to_utc_iso8601('scraped_at') }}, price, is_available)
                order by scraped_at asc, snapshot_id asc
            ) filter (where is_change_point),
            '[]'
        ) as change_points
    from located
    group by slug, seller
),

-- the texts of the snapshots holding the latest values: new rows carry them; older ones are
-- read by primary key (a short id list), never carried through the sort
picked_ids as (
    select batch.latest_snapshot_id as snapshot_id from batch
    union
    select batch.url_snapshot_id from batch
    union
    select batch.image_url_snapshot_id from batch
    union
    select batch.description_snapshot_id from batch
    union
    select batch.categories_snapshot_id from batch
),

picked_texts as (
    select
        arrived.snapshot_id,
        arrived.product_name,
        arrived.availability_raw,
        arrived.url,
        arrived.image_url,
        arrived.description,
        arrived.categories_raw
    from arrived
    inner join picked_ids on arrived.snapshot_id = picked_ids.snapshot_id
    union all
    select
        staged.snapshot_id,
        staged.product_name,
        staged.availability_raw,
        staged.url,
        staged.image_url,
        staged.description,
        staged.categories_raw
    from {{ ref('stg_scraper__product_price_snapshots') }} as staged
    where
        staged.snapshot_id = any(
            array(
                select picked_ids.snapshot_id
                from picked_ids
                where not exists (
                    select from arrived
                    where arrived.snapshot_id = picked_ids.snapshot_id
                )
            )
        )
),

-- the texts of the snapshots each offer picked, in one join and one pass: joining picked_texts
-- (a CTE: the planner knows nothing of its ids' uniqueness) once per text multiplied the row
-- estimates into hash tables of gigabytes, and a full rebuild of a young history (a few
-- snapshots per offer) did not end
offer_texts as (
    select
        batch.slug,
        batch.seller,
        max(picked_texts.product_name)
        filter (where picked_texts.snapshot_id = batch.latest_snapshot_id) as product_name,
        max(picked_texts.availability_raw)
        filter (where picked_texts.snapshot_id = batch.latest_snapshot_id) as availability_raw,
        max(picked_texts.url)
        filter (where picked_texts.snapshot_id = batch.url_snapshot_id) as url,
        max(picked_texts.image_url)
        filter (where picked_texts.snapshot_id = batch.image_url_snapshot_id) as image_url,
        max(picked_texts.description)
        filter (where picked_texts.snapshot_id = batch.description_snapshot_id) as description,
        max(picked_texts.categories_raw)
        filter (where picked_texts.snapshot_id = batch.categories_snapshot_id) as categories_raw
    from batch
    cross join
        lateral unnest(array[
            batch.latest_snapshot_id,
            batch.url_snapshot_id,
            batch.image_url_snapshot_id,
            batch.description_snapshot_id,
            batch.categories_snapshot_id
        ]) as picked (snapshot_id)
    inner join picked_texts on picked.snapshot_id = picked_texts.snapshot_id
    group by
        batch.slug,
        batch.seller,
        batch.latest_snapshot_id,
        batch.url_snapshot_id,
        batch.image_url_snapshot_id,
        batch.description_snapshot_id,
        batch.categories_snapshot_id
    -- an offer's row needs its latest snapshot's texts (as an inner join on it would)
    having bool_or(picked_texts.snapshot_id = batch.latest_snapshot_id)
),

merged as (
    select
        batch.slug collate "default" as slug, -- noqa: RF02
        batch.seller collate "default" as seller, -- noqa: RF02
        offer_texts.product_name,
        offer_texts.availability_raw,
        {% if full %}
            offer_texts.url,
            offer_texts.image_url,
            offer_texts.description,
            offer_texts.categories_raw,
        {% else %}
            case
                when batch.url_snapshot_id is null then prior_merged.url else offer_texts.url
            end as url,
            case
                when batch.image_url_snapshot_id is null then prior_merged.image_url
                else offer_texts.image_url
            end as image_url,
            case
                when batch.description_snapshot_id is null then prior_merged.description
                else offer_texts.description
            end as description,
            case
                when batch.categories_snapshot_id is null then prior_merged.categories_raw
                else offer_texts.categories_raw
            end as categories_raw,
        {% endif %}
        batch.latest_snapshot_id,
        batch.current_price,
        {% if full %}
            batch.last_known_price,
            batch.min_price,
            batch.max_price,
            batch.snapshot_count,
        {% else %}
            coalesce(batch.last_known_price, prior_merged.last_known_price) as last_known_price,
            least(batch.min_price, prior_merged.min_price) as min_price,
            greatest(batch.max_price, prior_merged.max_price) as max_price,
            batch.snapshot_count + coalesce(prior_merged.snapshot_count, 0) as snapshot_count,
        {% endif %}
        batch.is_available,
        batch.is_preorder,
        batch.latest_is_change_point,
        {% if full %}
            batch.lowest_price_at,
            batch.first_seen_at,
        {% else %}
            case
                when prior_merged.min_price is null or batch.min_price < prior_merged.min_price
                    then batch.lowest_price_at
                when batch.min_price is null or prior_merged.min_price < batch.min_price
                    then prior_merged.lowest_price_at
                else least(batch.lowest_price_at, prior_merged.lowest_price_at)
            end as lowest_price_at,
            least(batch.first_seen_at, prior_merged.first_seen_at) as first_seen_at,
        {% endif %}
        batch.last_seen_at,
        {% if full %}
            batch.product_codes,
            batch.change_points
        {% else %}
            case
                when prior_merged.slug is null then batch.product_codes
                else array(
                    select distinct merged_codes.product_code
                    from unnest(prior_merged.product_codes || batch.product_codes) as merged_codes (product_code)
                    order by merged_codes.product_code
                )
            end as product_codes,
            coalesce(prior_merged.change_points, '[]') || batch.change_points as change_points
        {% endif %}
    from batch
    inner join offer_texts
        on batch.slug = offer_texts.slug and batch.seller = offer_texts.seller
    {% if not full %}
        left join prior_merged
            on batch.slug = prior_merged.slug and batch.seller = prior_merged.seller
    {% endif %}
),

final as (
    select
        merged.*,
        {{ normalize_categories('merged.categories_raw') }} as categories
    from merged
    {% if not full %}
        union all
        select * from appended
    {% endif %}
)

select * from final
