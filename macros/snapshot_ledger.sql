{#
    The relation holding the ids of the raw snapshots merged into the incremental state recently
    (`<state schema>.merged_snapshot_ids`): every id above `max(snapshot_id) - snapshot_id_overlap`
    that a refresh has merged (quarantined rows included). docs/DESIGN.md, "Incremental state".
#}
{% macro snapshot_ledger() -%}
    {{ adapter.quote(generate_schema_name('state', none) | trim) }}.merged_snapshot_ids
{%- endmacro %}

{#
    The body of a state model's `lower_bound` CTE: ids at or below it were merged by earlier runs
    (max of the ledger minus `snapshot_id_overlap`); on a full rebuild (`rebuild`) every id up to
    the arrivals' highest minus the overlap is read now. `arrivals` names the model's CTE of
    this run's arrivals (int_price_snapshots_arrived).
#}
{% macro snapshot_lower_bound(rebuild, arrivals='arrived') -%}
    {%- if rebuild -%}
        select coalesce(max({{ arrivals }}.snapshot_id), 0) - {{ var('snapshot_id_overlap') }} as snapshot_id
        from {{ arrivals }}
    {%- else -%}
        select coalesce(max(ledger.snapshot_id), 0) - {{ var('snapshot_id_overlap') }} as snapshot_id
        from {{ snapshot_ledger() }} as ledger
    {%- endif -%}
{%- endmacro %}

{#
    Whether the raw snapshot `snapshot_id` is one this run knows: at or below the lower bound
    (the model's `lower_bound` CTE), arriving now (its `arrivals` CTE) or in the ledger (merged
    by an earlier run; on a full rebuild the arrivals hold all of those). A row committed after
    int_price_snapshots_arrived read the raw table is none of these: it arrives in the next run,
    and is never merged twice.
#}
{% macro is_known_snapshot(snapshot_id, rebuild, arrivals='arrived') -%}
    (
        {{ snapshot_id }} <= (select lower_bound.snapshot_id from lower_bound)
        or {{ snapshot_id }} in (select {{ arrivals }}.snapshot_id from {{ arrivals }})
        {%- if not rebuild %}
            or {{ snapshot_id }} in (select ledger.snapshot_id from {{ snapshot_ledger() }} as ledger)
        {%- endif %}
    )
{%- endmacro %}
