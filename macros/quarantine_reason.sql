{#
    Why a raw snapshot is quarantined (left out of every read model), or NULL when it is fine.
    Row-level rules: a negative price, a blank slug (product_name_normalized empty after trimming
    every blank, NBSP included), a blank seller. Several reasons are joined with ', ' in this
    order: 'blank_slug', 'blank_seller', 'negative_price'. Staging keeps the rows whose reason is
    NULL; catalog_quarantined_snapshots lists the others.
#}
{% macro quarantine_reason(slug, seller, price) -%}
    nullif(
        concat_ws(
            ', ',
            case when not {{ has_text(slug) }} then 'blank_slug' end,
            case when not {{ has_text(seller) }} then 'blank_seller' end,
            case when {{ price }} < 0 then 'negative_price' end
        ),
        ''
    )
{%- endmacro %}
