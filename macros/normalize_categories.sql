{#
    Turns a raw comma-separated tag string (' rodinné hry ,Pro 2  hráče, ') into a normalized text[]:
    split on commas, inner blanks (NBSP and friends included) collapsed to one space, trimmed,
    lower-cased, empty tags dropped, distinct, sorted. NULL or a string without any tag gives an
    empty array, never NULL. The API's twin is `api.params.normalize_category`.
#}
{% macro normalize_categories(expression) -%}
    array(
        select distinct normalized_tags.tag
        from (
            select lower({{ trim_blanks('raw_tags.raw_tag', collapse=true) }}) as tag
            from unnest(string_to_array({{ expression }}, ',')) as raw_tags (raw_tag)
        ) as normalized_tags
        where normalized_tags.tag <> ''
        order by normalized_tags.tag
    )
{%- endmacro %}
