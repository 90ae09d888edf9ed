{#
    Use a model's configured schema exactly (`close_staging`, `close_marts`) instead of dbt's
    default `<target schema>_<custom schema>`: the warehouse names are part of the project's
    contract (DESIGN §2), and dashboards point at them.

    A node without a custom schema (tests' audit tables, anything added later) falls back to
    the target's schema.
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
