{#
    Accent- and case-insensitive form of a text used for pattern matching: blanks (NBSP and
    friends included) collapsed to one space, trimmed, accents removed, then lower-cased
    ('Není\u00a0 Skladem' -> 'neni skladem'). Applied to both the raw availability text and the
    patterns of the availability_rules seed. unaccent lives in schema public (`pricecat migrate`).
#}
{% macro normalize_match_text(expression) -%}
    lower(public.unaccent({{ trim_blanks(expression, collapse=true) }}))
{%- endmacro %}
