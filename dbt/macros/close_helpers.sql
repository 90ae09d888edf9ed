{#
    Small cross-database helpers (DuckDB and Postgres). dbt_utils is not available offline,
    so these are written here.
#}

{# Integer cents to a currency amount, an exact decimal with 2 places. #}
{% macro cents_to_amount(column_name) -%}
    cast(cast({{ column_name }} as {{ close_type_double() }}) / 100 as decimal(18, 2))
{%- endmacro %}

{# Seconds to minutes, as a float. #}
{% macro seconds_to_minutes(column_name) -%}
    cast({{ column_name }} as {{ close_type_double() }}) / 60
{%- endmacro %}

{#
    numerator / denominator as a float, or null when the denominator is 0 or null: a rate with
    nothing to divide by is unknown, not zero.
#}
{% macro safe_divide(numerator, denominator) -%}
    case
        when ({{ denominator }}) is null or ({{ denominator }}) = 0 then null
        else cast({{ numerator }} as {{ close_type_double() }}) / ({{ denominator }})
    end
{%- endmacro %}

{# A date plus a whole number of days, as a date. #}
{% macro add_days(date_expression, days) -%}
    cast({{ dbt.dateadd('day', days, date_expression) }} as date)
{%- endmacro %}

{# First day of the calendar month of a date, as a date. #}
{% macro month_start(date_expression) -%}
    cast({{ dbt.date_trunc('month', date_expression) }} as date)
{%- endmacro %}

{#
    A 64-bit float. dbt.type_float() is `float` on DuckDB, which is a 32-bit REAL there
    (1/3 would come out as 0.3333333432674408).
#}
{% macro close_type_double() -%}
    double precision
{%- endmacro %}
