{#
    Every model, seed and view of the project lands in the target schema itself (no
    `<target>_<custom>` suffixes): the refresh flow builds one schema and swaps it in whole, so the
    staging views stay beside the tables they read and the publish is a single rename.
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ target.schema }}
{%- endmacro %}
