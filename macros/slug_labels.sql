{#
    A select of the name and tag list of every slug, picked from its sellers in `relation` (a
    catalog_slug_seller_summary): the one definition catalog_slug_summary and
    catalog_slug_seller_deals both use. The deals compute it from the seller summary rather than
    read catalog_slug_summary, so they do not wait for that model and its tests: the two build
    side by side.
    - name: the first seller in priority order whose latest name is not blank (staging turned
      blank texts, NBSP-only included, into NULL); the slug when every seller's is.
    - categories: the union of the sellers' normalized tags, sorted; empty, never NULL.
#}
{% macro slug_labels(relation) -%}
    select
        slug_names.slug,
        coalesce(slug_names.name, slug_names.slug) as name,
        coalesce(slug_tags.categories, '{}') as categories
    from (
        select
            slug,
            (array_agg(product_name order by seller_priority) filter (where product_name is not null))[1] as name
        from {{ relation }}
        group by slug
    ) as slug_names
    left join (
        select
            slug_sellers.slug,
            array_agg(distinct seller_tags.tag order by seller_tags.tag) as categories
        from {{ relation }} as slug_sellers
        cross join lateral unnest(slug_sellers.categories) as seller_tags (tag)
        group by slug_sellers.slug
    ) as slug_tags on slug_names.slug = slug_tags.slug
{%- endmacro %}
