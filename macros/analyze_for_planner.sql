{#
    Post-hook of every mart and state table: ANALYZE, so the planner's statistics travel with the
    table (through the publish swap, on a server that runs without autovacuum). With the model's
    `meta.analyze_columns`, only those columns get statistics (the row count is always refreshed):
    ANALYZE reads up to 30,000 sampled rows of every column, and the wide columns nobody filters,
    joins or sorts on (the price_points / change_points JSON arrays, which grow with the history,
    the texts) cost most of it. docs/BENCHMARKS.md, "Incremental refresh".
#}
{% macro analyze_for_planner() -%}
    {%- set columns = (config.get('meta') or {}).get('analyze_columns') -%}
    analyze {{ this }}{% if columns %} ({{ columns | join(', ') }}){% endif %}
{%- endmacro %}
