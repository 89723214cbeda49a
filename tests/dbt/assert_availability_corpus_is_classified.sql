{{ config(tags=['seed_check']) }}
-- Every text of the availability_corpus seed is classified as a shopper reads it. Returns one
-- row per misclassified text, naming the text (quoted, so blanks show) and both classes.
with

corpus as (
    select
        availability_text,
        expected_class
    from {{ ref('availability_corpus') }}
),

classified as (
    select
        corpus.availability_text,
        corpus.expected_class,
        availability_rule.rule_order,
        case
            when coalesce(availability_rule.is_available, false) then 'available'
            when coalesce(availability_rule.is_preorder, false) then 'preorder'
            else 'unavailable'
        end as actual_class
    from corpus
    {{ classify_availability('corpus.availability_text') }}
),

final as (
    select
        coalesce(quote_literal(availability_text), 'NULL') as availability_text,
        expected_class,
        actual_class,
        rule_order as matched_rule_order
    from classified
    where expected_class <> actual_class
)

select * from final
