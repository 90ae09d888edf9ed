{#
    Views on DuckDB: one `create or replace view` instead of dbt's default create-temporary /
    rename-old / rename-new / drop-backup sequence. DuckDB replaces a view atomically, so the
    swap buys nothing there, and the staging views are rebuilt on every run: four statements
    fewer for each of them is most of what a daily incremental rerun spends on staging
    (issue 14). Everything else is the default materialization's: hooks, grants, persist_docs.
    Other warehouses keep their adapter's view materialization.
#}
{% materialization view, adapter='duckdb' %}

    {%- set existing_relation = load_cached_relation(this) -%}
    {%- set target_relation = this.incorporate(type='view') -%}
    {% set grant_config = config.get('grants') %}

    {{ run_hooks(pre_hooks, inside_transaction=False) }}
    {{ run_hooks(pre_hooks, inside_transaction=True) }}

    {#- a table of that name (a model that changed materialization) cannot be replaced by a view #}
    {% if existing_relation is not none and not existing_relation.is_view %}
        {{ adapter.drop_relation(existing_relation) }}
    {% endif %}

    {% call statement('main') -%}
        {%- set sql_header = config.get('sql_header', none) -%}
        {{ sql_header if sql_header is not none }}
        create or replace view {{ target_relation }} as (
            {{ sql }}
        );
    {%- endcall %}

    {% set should_revoke = should_revoke(existing_relation, full_refresh_mode=True) %}
    {% do apply_grants(target_relation, grant_config, should_revoke=should_revoke) %}

    {% do persist_docs(target_relation, model) %}

    {{ run_hooks(post_hooks, inside_transaction=True) }}

    {{ adapter.commit() }}

    {{ run_hooks(post_hooks, inside_transaction=False) }}

    {{ return({'relations': [target_relation]}) }}

{% endmaterialization %}
