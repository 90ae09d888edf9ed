{#
    One row per day, column `date_day` (date), for the half-open range [start_date, end_date).
    Both arguments are SQL expressions (a column of a one-row CTE, a scalar subquery, a
    literal cast to date). dbt_utils.date_spine is not available offline and needs literal
    bounds; this one takes bounds computed from the data.

    Usage:
        select date_day from ({{ close_date_spine("(select min(d) from x)", "(select max(d) + 1 from x)") }}) as spine
#}
{% macro close_date_spine(start_date, end_date) -%}
    {{ return(adapter.dispatch('close_date_spine', 'close_reports')(start_date, end_date)) }}
{%- endmacro %}

{% macro duckdb__close_date_spine(start_date, end_date) -%}
    select cast(generated.date_value as date) as date_day
    from (
        select unnest(generate_series(
            cast({{ start_date }} as timestamp),
            cast({{ end_date }} as timestamp) - interval 1 day,
            interval 1 day
        )) as date_value
    ) as generated
    where generated.date_value is not null
{%- endmacro %}

{% macro default__close_date_spine(start_date, end_date) -%}
    select cast(generated.date_value as date) as date_day
    from generate_series(
        cast({{ start_date }} as timestamp),
        cast({{ end_date }} as timestamp) - interval '1 day',
        interval '1 day'
    ) as generated(date_value)
{%- endmacro %}
