{{
    config(
        materialized='table',
        meta={'analyze_columns': ['slug', 'seller', 'event_type', 'happened_at']},
        indexes=[
            {'columns': ['happened_at']},
            {'columns': ['slug', 'seller']},
        ],
    )
}}

{#
    Price and stock events per (slug, seller), over the whole history up to as_of (the dbt var
    `as_of`, default the build's start): a copy of the incremental state int_deal_events_merged,
    where every event is computed once, when the history up to its time is known (definitions
    there and in docs/DESIGN.md "Deals"). Each event depends only on the history up to its own
    time, so cutting at as_of gives the events of the history up to as_of.
#}

{%- set as_of = var('as_of', none) or run_started_at.isoformat() %}

with

offers as (
    select
        slug,
        seller,
        event_type,
        event_price,
        event_happened_at
    from {{ ref('int_deal_events_merged') }}
),

events as (
    select
        offers.slug,
        offers.seller,
        offer_event.event_type,
        offer_event.price::numeric(12, 2) as price,
        offer_event.happened_at
    from offers
    cross join lateral unnest(
        offers.event_type, offers.event_price, offers.event_happened_at
    ) as offer_event (event_type, price, happened_at)
),

final as (
    select *
    from events
    where happened_at <= '{{ as_of }}'::timestamptz
)

select * from final
