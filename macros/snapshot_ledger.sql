{#
    The relation holding the ids of the raw snapshots merged into the incremental state recently
    (`<state schema>.merged_snapshot_ids`): every id above `max(snapshot_id) - snapshot_id_overlap`
    that a refresh has merged (quarantined rows included). docs/DESIGN.md, "Incremental state".
#}
{% macro snapshot_ledger() -%}
    {{ adapter.quote(generate_schema_name('state', none) | trim) }}.merged_snapshot_ids
{%- endmacro %}
