{#
    The grain test: no two rows share the same values of `combination_of_columns`.
    (dbt_utils.unique_combination_of_columns, written locally because `dbt deps` is offline.)
    Returns one row per duplicated key, with how many rows share it. Column names are quoted,
    so raw keys named like SQL keywords (`date`, `key`) work. A raw table the loader has not
    created (see close_source) has no duplicates.

    `optional_columns`: key columns a relation may lack, checked only where present (`segment`
    on a raw table loaded before segments existed: all of its rows are one segment).
#}
{% test unique_combination_of_columns(model, combination_of_columns, optional_columns=[]) %}
    {#- `model` is a subquery (not a relation) where the test is limited to some rows
        (get_where_subquery): the relation exists then -#}
    {%- set existing = (model if model is string else load_relation(model)) if execute else none -%}
    {%- set present = [] -%}
    {%- if existing is not none and existing is not string and optional_columns -%}
        {%- for column in adapter.get_columns_in_relation(existing) -%}
            {%- do present.append(column.name | lower) -%}
        {%- endfor -%}
    {%- endif -%}
    {%- set quoted = [] -%}
    {%- for column in combination_of_columns -%}
        {%- if column not in optional_columns or existing is none or existing is string or (column | lower) in present -%}
            {%- do quoted.append(adapter.quote(column)) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- set columns_csv = quoted | join(', ') %}
    {%- if execute and existing is none %}

select 1 as n_rows where 1 = 0

    {%- else %}
{{ adapter.dispatch('close_duplicate_keys', 'close_reports')(model, columns_csv) }}
    {%- endif %}
{% endtest %}
