{#
    Trims every blank (see blank_characters: NBSP, U+2007, U+2009, U+202F... and the usual
    whitespace) from both ends of a text; with collapse=true, inner runs of blanks also become
    one ASCII space ('a\u00a0\u00a0b' -> 'a b'). NULL stays NULL.
#}
{% macro trim_blanks(expression, collapse=false) -%}
    {%- if collapse -%}
        regexp_replace(btrim({{ expression }}, e'{{ blank_characters() }}'), e'[{{ blank_characters() }}]+', ' ', 'g')
    {%- else -%}
        btrim({{ expression }}, e'{{ blank_characters() }}')
    {%- endif -%}
{%- endmacro %}
