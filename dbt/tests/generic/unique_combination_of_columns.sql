{#
    The grain test: no two rows share the same values of `combination_of_columns`.
    (dbt_utils.unique_combination_of_columns, written locally because `dbt deps` is offline.)
    Returns one row per duplicated key, with how many rows share it. Column names are quoted,
    so raw keys named like SQL keywords (`date`, `key`) work. A raw table the loader has not
    created (see close_source) has no duplicates.
#}
{% test unique_combination_of_columns(model, combination_of_columns) %}
    {%- set quoted = [] -%}
    {%- for column in combination_of_columns -%}
        {%- do quoted.append(adapter.quote(column)) -%}
    {%- endfor -%}
    {%- set columns_csv = quoted | join(', ') %}
    {%- if execute and load_relation(model) is none %}

select 1 as n_rows where 1 = 0

    {%- else %}

with validation_errors as (

    select
        {{ columns_csv }},
        count(*) as n_rows
    from {{ model }}
    group by {{ columns_csv }}
    having count(*) > 1

)

select * from validation_errors

    {%- endif %}
{% endtest %}
