{#
    The grain test: no two rows share the same values of `combination_of_columns`.
    (dbt_utils.unique_combination_of_columns, written locally because `dbt deps` is offline.)
    Returns one row per duplicated key, with how many rows share it. Column names are quoted,
    so raw keys named like SQL keywords (`date`, `key`) work.
#}
{% test unique_combination_of_columns(model, combination_of_columns) %}
    {%- set quoted = [] -%}
    {%- for column in combination_of_columns -%}
        {%- do quoted.append(adapter.quote(column)) -%}
    {%- endfor -%}
    {%- set columns_csv = quoted | join(', ') %}

with validation_errors as (

    select
        {{ columns_csv }},
        count(*) as n_rows
    from {{ model }}
    group by {{ columns_csv }}
    having count(*) > 1

)

select * from validation_errors
{% endtest %}
