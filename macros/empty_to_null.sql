{#
    Trims spaces, tabs and line breaks from both ends of a text expression and turns the empty
    string into NULL, so "no value" has exactly one representation downstream.
#}
{% macro empty_to_null(expression) -%}
    nullif(btrim({{ expression }}, e' \t\r\n'), '')
{%- endmacro %}
