{#
    Generic test: fails unless the model holds exactly one row (returns one failing row saying
    how many it found). For single-row tables such as catalog_build_info.
#}
{% test exactly_one_row(model) %}
    select count(*) as found_rows
    from {{ model }}
    having count(*) <> 1
{% endtest %}
