{#
    Turns a raw comma-separated tag string (' rodinné hry ,Pro 2  hráče, ') into a normalized text[]:
    split on commas, inner whitespace collapsed, trimmed, lower-cased, empty tags dropped, distinct,
    sorted. NULL or a string without any tag gives an empty array, never NULL.
#}
{% macro normalize_categories(expression) -%}
    array(
        select distinct normalized_tags.tag
        from (
            select lower(btrim(regexp_replace(raw_tags.raw_tag, '\s+', ' ', 'g'))) as tag
            from unnest(string_to_array({{ expression }}, ',')) as raw_tags (raw_tag)
        ) as normalized_tags
        where normalized_tags.tag <> ''
        order by normalized_tags.tag
    )
{%- endmacro %}
