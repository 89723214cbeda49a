{#
    One row per accepted raw snapshot, cleaned: texts trimmed of every blank (NBSP included;
    empty -> NULL), availability classified by `classify_availability` (the availability_rules
    seed), categories normalized to a sorted text[]. Rows breaking a row-level rule (negative
    price, blank slug, blank seller: `quarantine_reason`) are left out here, so no read model ever
    sees them; `catalog_quarantined_snapshots` lists them. A view: no joins across snapshots, no
    aggregation. The rule lookup is a lateral join keyed by the raw availability text only, so
    Postgres memoizes it (a few dozen distinct texts for millions of rows) and unaccent runs once
    per distinct text, not once per row.
#}
with

source as (
    select
        id,
        scraped_at,
        seller,
        product_code,
        product_name_original,
        product_name_normalized,
        price,
        availability,
        url,
        image_url,
        description,
        categories
    from {{ source('scraper', 'product_price_snapshots') }}
),

accepted as (
    select *
    from source
    where {{ quarantine_reason('product_name_normalized', 'seller', 'price') }} is null
),

classified as (
    select
        accepted.*,
        availability_rule.rule_order as availability_rule_order,
        availability_rule.is_available,
        availability_rule.is_preorder
    from accepted
    {{ classify_availability('accepted.availability') }}
),

final as (
    select
        id as snapshot_id,
        product_name_normalized as slug,
        seller,
        {{ empty_to_null('product_code') }} as product_code,
        {{ empty_to_null('product_name_original') }} as product_name,
        {{ empty_to_null('availability') }} as availability_raw,
        {{ empty_to_null('url') }} as url,
        {{ empty_to_null('image_url') }} as image_url,
        {{ empty_to_null('description') }} as description,
        price,
        availability_rule_order,
        coalesce(is_available, false) as is_available,
        coalesce(is_preorder, false) as is_preorder,
        -- presence flags let the marts locate the latest non-empty value without carrying
        -- the texts themselves through their 2M-row sort
        {{ has_text('url') }} as has_url,
        {{ has_text('image_url') }} as has_image_url,
        {{ has_text('description') }} as has_description,
        -- same as cardinality(categories) > 0, without building the array
        coalesce(categories ~ e'[^,{{ blank_characters() }}]', false) as has_categories,
        scraped_at,
        {{ empty_to_null('categories') }} as categories_raw,
        {{ normalize_categories('categories') }} as categories
    from classified
)

select * from final
