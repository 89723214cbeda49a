{#
    THE definition of "blank" for the whole project: every character listed here counts as
    whitespace wherever a text is trimmed, collapsed or judged empty (staging texts, slugs and
    sellers of the quarantine rules, categories, availability matching). Postgres' own `\s` and
    btrim() default miss NBSP and its friends, which shops put into names, tags and descriptions.
    Returns the characters as escapes for an e'...' literal:
    tab, LF, VT, FF, CR, space, U+0085, U+00A0 (NBSP), U+1680, U+2000-U+200A (U+2007 figure
    space, U+2009 thin space...), U+2028, U+2029, U+202F (narrow NBSP), U+205F, U+3000, U+FEFF.
    The API's twin is `api.params.BLANKS`; tests/models/test_blanks.py checks that both agree.
#}
{% macro blank_characters() -%}
    {%- set code_points = [9, 10, 11, 12, 13, 32, 133, 160, 5760]
        + range(8192, 8203) | list
        + [8232, 8233, 8239, 8287, 12288, 65279] -%}
    {%- for code_point in code_points -%}
        {{ '\\u%04x' | format(code_point) }}
    {%- endfor -%}
{%- endmacro %}
