{#
    Generic test: the model has no rows; every row is a failure. Used with severity warn on
    catalog_availability_unmatched, so unknown availability texts show up in each build's log
    without ever blocking a publish.
#}
{% test no_rows(model) %}
    select *
    from {{ model }}
{% endtest %}
