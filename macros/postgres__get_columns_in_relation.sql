{#
    Override of dbt-postgres' column introspection: information_schema reports every array column
    as data_type 'ARRAY', which dbt then renders as the invalid cast `cast(... as ARRAY)` (unit
    test fixtures of our text[] columns fail; dbt-labs/dbt-adapters#939). Arrays are reported by
    their element type instead ('_text' -> 'text[]'); every other column is unchanged.
#}
{% macro postgres__get_columns_in_relation(relation) -%}
    {% call statement('get_columns_in_relation', fetch_result=True) %}
        select
            column_name,
            case
                when data_type = 'ARRAY' then substr(udt_name, 2) || '[]'
                else data_type
            end as data_type,
            character_maximum_length,
            numeric_precision,
            numeric_scale
        from {{ relation.information_schema('columns') }}
        where
            table_name = '{{ relation.identifier }}'
            {% if relation.schema %}
                and table_schema = '{{ relation.schema }}'
            {% endif %}
        order by ordinal_position
    {% endcall %}
    {% set table = load_result('get_columns_in_relation').table %}
    {{ return(sql_convert_columns_in_relation(table)) }}
{%- endmacro %}
