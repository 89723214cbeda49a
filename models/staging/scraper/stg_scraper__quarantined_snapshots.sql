{#
    The raw snapshots staging leaves out, one row per raw row, with the reason(s) from
    `quarantine_reason` (the same macro staging filters with, so a raw row is either in
    stg_scraper__product_price_snapshots or here, never both, never neither).
#}
with

source as (
    select
        id,
        seller,
        product_name_normalized,
        price,
        scraped_at
    from {{ source('scraper', 'product_price_snapshots') }}
),

checked as (
    select
        *,
        {{ quarantine_reason('product_name_normalized', 'seller', 'price') }} as reason
    from source
),

final as (
    select
        id as snapshot_id,
        seller,
        product_name_normalized as slug,
        reason,
        price,
        scraped_at
    from checked
    where reason is not null
)

select * from final
