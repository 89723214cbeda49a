{#
    Generic test: fails for every row whose column is negative (NULL passes; pair with not_null
    where a value is required). Guards prices: a negative raw price must fail the build.
#}
{% test non_negative(model, column_name) %}
    select {{ column_name }} as failing_value
    from {{ model }}
    where {{ column_name }} < 0
{% endtest %}
