{#
    Trims every blank (trim_blanks) from both ends of a text and turns the empty string into NULL,
    so "no value" has exactly one representation downstream.
#}
{% macro empty_to_null(expression) -%}
    nullif({{ trim_blanks(expression) }}, '')
{%- endmacro %}
