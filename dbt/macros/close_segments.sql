{#
    Segments: Close's report filters (a Smart View, reps, pipelines) configured as
    `[[sources.close.segments]]`. Every report table carries `segment` in its key: the
    segment's name, or `_all` for the unfiltered report (DESIGN §8). A raw table loaded before
    the loader wrote segments has no `segment` column; staging reads all of its rows as `_all`,
    so today's loads and tomorrow's both build, and a table migrated by the loader (old rows
    become `_all`) gives the same marts.
#}

{# The unfiltered segment: the rows analysts read when they do not filter. #}
{% macro close_unfiltered_segment() -%}
    '_all'
{%- endmacro %}

{#
    True when the raw table `table_name` has column `column_name`. A table the loader has not
    created yet is staged from the sources yml (close_source), which lists every contract
    column: true as well. Always true while parsing.
#}
{% macro close_source_has_column(table_name, column_name) %}
    {%- if not execute -%}
        {{ return(true) }}
    {%- endif -%}
    {%- set existing = load_relation(source('close', table_name)) -%}
    {%- if existing is none -%}
        {{ return(true) }}
    {%- endif -%}
    {%- for column in adapter.get_columns_in_relation(existing) -%}
        {%- if column.name | lower == column_name | lower -%}
            {{ return(true) }}
        {%- endif -%}
    {%- endfor -%}
    {{ return(false) }}
{% endmacro %}

{# The `segment` of a report table's rows, as a staging column expression. #}
{% macro close_segment(table_name) -%}
    {%- if close_source_has_column(table_name, 'segment') -%}
        cast(segment as {{ dbt.type_string() }})
    {%- else -%}
        cast({{ close_unfiltered_segment() }} as {{ dbt.type_string() }})
    {%- endif -%}
{%- endmacro %}
