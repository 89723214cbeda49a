{#
    Pre-hook of the incremental state models keyed by something other than the offer: when the
    state table exists but `state_full_rebuild` holds without `--full-refresh` (the ledger or the
    offer state is missing), the model's full branch only replaces the keys it produces
    (delete+insert), so keys gone from the history would stay; this empties the table first, in
    the same transaction. A no-op otherwise.
#}
{% macro clear_state_on_full_rebuild() -%}
    {%- if is_incremental() and state_full_rebuild() -%}
        delete from {{ this }}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}
