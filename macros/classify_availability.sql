{#
    The availability classifier, used by staging and by the corpus test: a `left join lateral`
    that picks, for the availability text `expression`, the first rule of the availability_rules
    seed (lowest rule_order) whose pattern occurs in the text, both normalized with
    normalize_match_text (case, accents and blanks do not matter). Exposes `<alias>.rule_order`
    (NULL = no rule matched), `<alias>.rule_group`, `<alias>.is_available`, `<alias>.is_preorder`.
    The lateral subquery depends on the text only, so Postgres memoizes it per distinct text.
    Callers turn a missing match into "unavailable" (coalesce(..., false)).
#}
{% macro classify_availability(expression, alias='availability_rule') -%}
    left join lateral (
        select
            availability_rules.rule_order,
            availability_rules.rule_group,
            availability_rules.is_available,
            availability_rules.is_preorder
        from {{ ref('availability_rules') }} as availability_rules
        where
            strpos(
                {{ normalize_match_text(expression) }},
                {{ normalize_match_text('availability_rules.pattern') }}
            ) > 0
        order by availability_rules.rule_order
        limit 1
    ) as {{ alias }} on true
{%- endmacro %}
