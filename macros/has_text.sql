{#
    True when a text holds at least one non-blank character (false for NULL and for a text made
    of blanks only, NBSP included), i.e. `empty_to_null(x) is not null`, but cheap on long
    multibyte texts: the first character usually decides (btrim on UTF-8 text walks the whole
    string), btrim runs only when it is blank. Used for the presence flags the marts scan over
    every snapshot and for the quarantine rules.
#}
{% macro has_text(expression) -%}
    coalesce(
        strpos(e'{{ blank_characters() }}', left({{ expression }}, 1)) = 0
        or {{ trim_blanks(expression) }} <> '',
        false
    )
{%- endmacro %}
