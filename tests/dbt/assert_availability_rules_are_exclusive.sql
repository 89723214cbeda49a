{{ config(tags=['seed_check']) }}
-- An availability rule may mark a text available or pre-orderable, never both.
select
    rule_order,
    pattern
from {{ ref('availability_rules') }}
where is_available and is_preorder
