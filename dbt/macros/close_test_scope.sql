{#
    Tests of the incremental marts check the windows the last build rebuilt (issue 14): a
    daily rerun rewrites a few weeks of a two-year mart, and the rows it did not touch passed
    the same tests when they were built. After an incremental run, the strategy
    `close_window_replace` keeps the distinct window keys it replaced in
    `<marts schema>_rebuilt_windows.<mart>` (every window when a changed dimension attribute
    made it rebuild them all); every build drops them first, so after a full build (first
    run, `--full-refresh`) there are none and every row is tested. A failed build rolls back
    with the mart, which keeps both as they were. `--vars '{close_test_all_rows: true}'`
    tests every row whatever the last build did. See docs/decisions.md, "Marts (dbt)".
#}

{#- Where the window keys an incremental run of `relation` replaced are kept. -#}
{% macro close_rebuilt_windows_relation(relation) -%}
    {{ return(api.Relation.create(
        database=relation.database,
        schema=relation.schema ~ '_rebuilt_windows',
        identifier=relation.identifier,
        type='table',
    )) }}
{%- endmacro %}

{#- on-run-start (dbt_project.yml) of a run or build: the schemas of the kept windows, made once
    before any model runs (two window-replace marts creating it at once in their own
    transactions conflict on DuckDB's catalog). -#}
{% macro close_create_rebuilt_windows_schemas() -%}
    {%- if execute and flags.WHICH in ('run', 'build') -%}
        {%- set schemas = [] -%}
        {%- for node in graph.nodes.values() -%}
            {%- if node.resource_type == 'model'
                and node.config.get('incremental_strategy') == 'close_window_replace' -%}
                {%- set mart = api.Relation.create(
                    database=node.database, schema=node.schema, identifier=node.alias) -%}
                {#- the schema alone: Postgres takes no database before it -#}
                {%- set schema = adapter.quote(close_rebuilt_windows_relation(mart).schema) -%}
                {%- if schema not in schemas -%}
                    {%- do schemas.append(schema) -%}
                {%- endif -%}
            {%- endif -%}
        {%- endfor -%}
        {%- for schema in schemas %}
    create schema if not exists {{ schema }};
        {%- endfor -%}
    {%- endif -%}
{%- endmacro %}

{#- Pre-hook of the marts (dbt_project.yml), for the window-replace ones: forget the previous
    run's windows (a full build keeps none: every row is tested). -#}
{% macro close_forget_rebuilt_windows() -%}
    {%- if execute and model.config.get('incremental_strategy') == 'close_window_replace' -%}
        {%- set kept = load_relation(close_rebuilt_windows_relation(this)) -%}
        {%- if kept is not none -%}
            {%- do adapter.cache_dropped(kept) -%}
            drop table {{ kept }}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}

{#- Statements of the strategy that keep the window keys (`keys`) present in the batch (in
    dbt's relation cache too: the pre-hook's lookup cached the schema without it). -#}
{% macro close_keep_rebuilt_windows(target, batch, keys) -%}
    {%- set kept = close_rebuilt_windows_relation(target) -%}
    {%- do adapter.cache_added(kept) -%}
    create schema if not exists {{ kept.without_identifier() }};
    drop table if exists {{ kept }};
    create table {{ kept }} as
    select distinct {{ keys | join(', ') }} from {{ batch }}
{%- endmacro %}

{#- A boolean SQL condition on the rows (alias `tested`) of `relation` that limits a test to
    the windows the last build rebuilt, or none: test every row (not a window-replace mart, no
    kept windows, or var close_test_all_rows). -#}
{% macro close_rebuilt_windows_condition(relation) -%}
    {%- if not execute or var('close_test_all_rows', false) or relation.identifier is none -%}
        {{ return(none) }}
    {%- endif -%}
    {#- the mart's node by its id (a mart's relation is named as the model; a lookup, not a
        loop over the graph: this runs for every test) -#}
    {%- set node = graph.nodes.get('model.close_reports.' ~ (relation.identifier | lower)) -%}
    {%- set keys = [] -%}
    {%- if node
        and node.config.get('incremental_strategy') == 'close_window_replace'
        and node.schema | lower == (relation.schema or '') | lower -%}
        {%- set unique_key = node.config.get('unique_key') -%}
        {%- do keys.extend([unique_key] if unique_key is string else unique_key) -%}
    {%- endif -%}
    {%- if not keys -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set kept = load_relation(close_rebuilt_windows_relation(relation)) -%}
    {%- if kept is none -%}
        {{ return(none) }}
    {%- endif -%}
    {#- the keys' ranges as constants first: the warehouse prunes the rows outside before the
        semi-join (a daily rerun's windows are a few weeks of years) -#}
    {%- set bounds_sql -%}
        select count(*){% for key in keys %}, count({{ key }}), min({{ key }}), max({{ key }}){% endfor %}
        from {{ kept }}
    {%- endset -%}
    {%- set bounds = run_query(bounds_sql).rows[0] -%}
    {%- set ranges = [] -%}
    {%- for key in keys -%}
        {%- set non_null, low, high = bounds[1 + 3 * loop.index0], bounds[2 + 3 * loop.index0], bounds[3 + 3 * loop.index0] -%}
        {%- if non_null == bounds[0] and low is not none -%}
            {%- do ranges.append(
                'tested.' ~ key ~ " between '" ~ (low | string | replace("'", "''")) ~ "' and '"
                ~ (high | string | replace("'", "''")) ~ "'"
            ) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- set condition -%}
        {% for range in ranges %}{{ range }} and {% endfor %}exists (
            select 1 from {{ kept }} as rebuilt_windows
            where
            {%- for key in keys %}
                rebuilt_windows.{{ key }} is not distinct from tested.{{ key }}{% if not loop.last %} and{% endif %}
            {%- endfor %}
        )
    {%- endset -%}
    {{ return(condition) }}
{%- endmacro %}

{#- The rows of `relation` a test checks, as a subquery (or the relation itself when all of
    them): the rebuilt windows of a window-replace mart (see above), and `where`, a condition
    of the test's own. Singular tests call it directly. -#}
{% macro close_tested_rows(relation, where='') -%}
    {%- set condition = close_rebuilt_windows_condition(relation) -%}
    {%- if condition is none and not where -%}
        {{ return(relation) }}
    {%- endif -%}
    {%- set filtered -%}
        (select * from {{ relation }} as tested
         where {{ condition if condition is not none else '1 = 1' }}
         {%- if where %} and ({{ where }}){% endif %})
    {%- endset -%}
    {{ return(filtered) }}
{%- endmacro %}

{#- dbt's hook for generic tests (`model` in every generic test): close_tested_rows with the
    test's `where` config. -#}
{% macro default__get_where_subquery(relation) -%}
    {%- set rows = close_tested_rows(relation, config.get('where', '')) -%}
    {{ return(rows if rows is not string else rows ~ ' dbt_subquery') }}
{%- endmacro %}
