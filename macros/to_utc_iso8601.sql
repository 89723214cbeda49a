{#
    Renders a timestamptz as UTC text 'YYYY-MM-DDTHH:MI:SSZ' (whole seconds), the format of the
    timestamps inside price_points; independent of the session time zone.
#}
{% macro to_utc_iso8601(expression) -%}
    to_char({{ expression }} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
{%- endmacro %}
