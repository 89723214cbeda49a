{#
    Post-hook of every mart and state table: ANALYZE, so the planner's statistics travel with the
    table (through the publish swap, on a server that runs without autovacuum). With the model's
    `meta.analyze_columns`, only those columns get statistics (the row count is always refreshed):
    ANALYZE reads up to 30,000 sampled rows of every column, and the wide columns nobody filters,
    joins or sorts on (the price_points / change_points JSON arrays, which grow with the history,
    the texts) cost most of it. docs/BENCHMARKS.md, "Incremental refresh".
    An incremental run of a state table (never swapped) analyzes it only when it has no
    statistics yet or its row count moved more than 10 % from the planner's (pg_class.reltuples,
    kept by ANALYZE and the flow's VACUUM): a scrape cycle rewrites nearly every offer without
    changing what the statistics say about (slug, seller).
#}
{% macro analyze_for_planner() -%}
    {%- set columns = (config.get('meta') or {}).get('analyze_columns') -%}
    {%- set statement = 'analyze ' ~ this ~ (' (' ~ columns | join(', ') ~ ')' if columns else '') -%}
    {%- if config.get('materialized') == 'incremental' and is_incremental() and not state_full_rebuild() %}
        do $analyze$
        begin
            if (
                select
                    relation.reltuples < 0
                    or abs(relation.reltuples - (select count(*) from {{ this }})) > 0.1 * relation.reltuples
                from pg_class as relation
                where relation.oid = (quote_ident('{{ this.schema }}') || '.' || quote_ident('{{ this.identifier }}'))::regclass
            ) then
                execute {{ dbt.string_literal(statement) }};
            end if;
        end
        $analyze$
    {%- else %}
        {{ statement }}
    {%- endif %}
{%- endmacro %}
