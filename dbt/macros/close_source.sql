{#
    `source('close', table_name)`, or — when the loader has not created that table (yet) — an
    empty relation with the table's contract columns, typed as the sources yml declares them.

    dlt creates a table only once a resource yields rows: `custom_reports` stays absent
    without configured Explorer queries, and `--resources a,b` loads a subset. Staging such a
    table as empty keeps `dbt build` working on whatever was loaded; the marts built on it are
    then empty rather than failing.
#}
{% macro close_source(table_name) %}
    {%- set relation = source('close', table_name) -%}
    {%- if not execute -%}
        {{ return(relation) }}
    {%- endif -%}
    {%- if load_relation(relation) is not none -%}
        {{ return(relation) }}
    {%- endif -%}
    {%- set node = graph.sources['source.' ~ project_name ~ '.close.' ~ table_name] -%}
    {%- set columns = node.columns.values() | list -%}
    {%- do log('close_source: ' ~ relation ~ ' does not exist; staging it as an empty table', info=true) -%}
    {%- set empty -%}
        (
            select
                {%- for column in columns %}
                cast(null as {{ column.data_type }}) as {{ adapter.quote(column.name) }}{% if not loop.last %},{% endif %}
                {%- endfor %}
            where 1 = 0
        ) as {{ table_name }}_not_loaded
    {%- endset -%}
    {{ return(empty) }}
{% endmacro %}
