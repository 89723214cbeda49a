{#
    True when a text holds at least one non-whitespace character (false for NULL), i.e.
    `nullif(btrim(x), '') is not null`, but cheap on long multibyte texts: the first character
    usually decides (btrim on UTF-8 text walks the whole string), btrim runs only when it is
    blank. Used for the presence flags the marts scan over every snapshot.
#}
{% macro has_text(expression) -%}
    coalesce(ascii({{ expression }}) not in (0, 9, 10, 13, 32) or btrim({{ expression }}, e' \t\r\n') <> '', false)
{%- endmacro %}
