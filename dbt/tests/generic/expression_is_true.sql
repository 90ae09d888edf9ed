{#
    Every row satisfies a boolean SQL `expression` (dbt_utils.expression_is_true, written
    locally). Used at model level for arithmetic invariants such as
    `count_ended = count_started + count_gained - count_lost`; used on a column, the column
    name is put in front of the expression (`column_name: x`, `expression: ">= 0"`).
    A row where the expression is null (a null operand) is not a failure: nullability has its
    own `not_null` tests.
#}
{% test expression_is_true(model, expression, column_name=none) %}

select *
from {{ model }}
{% if column_name is none %}
where not ({{ expression }})
{% else %}
where not ({{ column_name }} {{ expression }})
{% endif %}

{% endtest %}
