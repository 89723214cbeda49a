{{
    config(
        pre_hook=[
            "create schema if not exists catalog_ops",
            "create sequence if not exists catalog_ops.build_ids",
        ],
    )
}}

-- One row naming this build: a number drawn from a sequence that lives outside every swapped
-- schema, so it is unique per build and never reused (a Redis restart or flush cannot reset it).
-- The API keys its cache by it and checks it after multi-statement reads. previous_build_id is
-- the build published while this one was built (the one it replaces): an API worker that never
-- saw it still knows which generation's cache entries may answer while Postgres struggles.
{%- set published = adapter.get_relation(
    database=target.database, schema='catalog', identifier='catalog_build_info'
) %}

with

final as (
    select
        nextval('catalog_ops.build_ids')::bigint as build_id,
        {% if published -%}
            (select max(p.build_id) from {{ published }} as p) as previous_build_id,
        {%- else -%}
            null::bigint as previous_build_id,
        {%- endif %}
        now() as built_at
)

select * from final
