{#
    Generic test: fails for every row whose column is negative (NULL passes; pair with not_null
    where a value is required). Guards the marts' prices (negative raw prices are quarantined before the marts).
#}
{% test non_negative(model, column_name) %}
    select {{ column_name }} as failing_value
    from {{ model }}
    where {{ column_name }} < 0
{% endtest %}
