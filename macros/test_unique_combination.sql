{#
    Generic test: the combination of `combination_of_columns` is unique across the model (rows
    with a NULL in any of the columns are compared like values, as `group by` does). A dbt_utils-free
    stand-in for unique_combination_of_columns; returns one row per duplicated combination.
#}
{% test unique_combination(model, combination_of_columns) %}
    {%- set columns_csv = combination_of_columns | join(', ') %}
    select
        {{ columns_csv }},
        count(*) as row_count
    from {{ model }}
    group by {{ columns_csv }}
    having count(*) > 1
{% endtest %}
