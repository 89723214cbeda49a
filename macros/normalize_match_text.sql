{#
    Accent- and case-insensitive form of a text used for pattern matching: inner whitespace
    collapsed to one space, trimmed, accents removed, then lower-cased ('Není  Skladem' -> 'neni skladem').
    Applied to both the raw availability text and the patterns of the availability_rules seed.
    unaccent lives in schema public (created by `pricecat migrate`).
#}
{% macro normalize_match_text(expression) -%}
    lower(public.unaccent(btrim(regexp_replace({{ expression }}, '\s+', ' ', 'g'))))
{%- endmacro %}
