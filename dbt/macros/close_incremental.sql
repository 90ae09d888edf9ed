{#
    Incremental marts (issue 14). The large daily facts are `incremental` models: a run
    rebuilds only the report windows the loads since the last build touched, and
    `--full-refresh` gives the same rows.

    - **What was touched**: staged rows whose `_dlt_load_id` is newer than the newest one the
      mart already holds (`close_watermark`; every mart row keeps the `_dlt_load_id` of the
      raw rows behind it). The loader replaces a re-read window whole (delete-insert per
      window), so every row of a re-read window carries the new load id. The run ledger adds
      the windows a run read even where they came back empty (`close_ledger_days`).
    - **How it is replaced**: strategy `close_window_replace` deletes every row of each window
      (the `unique_key`: the window part of the mart's grain) present in the new batch, then
      inserts the batch: a row that vanished from Close's answer vanishes from the mart, which
      a merge on the full grain would keep.
    - **What else forces a window**: a mart keeps dimension attributes (labels, names); when
      one of them changed for an entity the mart holds, the model recomputes every window
      (rare: a renamed status or pipeline), so incremental and full refresh never drift.
#}

{#
    Custom incremental strategy: replace whole windows. `unique_key` names the window columns;
    the batch may hold many rows per window. The replaced windows' keys are kept for the
    tests (macros/close_test_scope.sql).
#}
{% macro get_incremental_close_window_replace_sql(arg_dict) %}
    {%- set target = arg_dict['target_relation'] -%}
    {%- set source = arg_dict['temp_relation'] -%}
    {%- set keys = arg_dict['unique_key'] -%}
    {%- if keys is string -%}
        {%- set keys = [keys] -%}
    {%- endif -%}
    {%- set dest_cols_csv = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
    delete from {{ target }} as replaced_target
    where exists (
        select 1
        from (select distinct {{ keys | join(', ') }} from {{ source }}) as replaced_windows
        where
            {%- for key in keys %}
            replaced_windows.{{ key }} = replaced_target.{{ key }}{% if not loop.last %} and{% endif %}
            {%- endfor %}
    );

    insert into {{ target }} ({{ dest_cols_csv }})
    select {{ dest_cols_csv }}
    from {{ source }};

    {{ close_keep_rebuilt_windows(target, source, keys) }}
{% endmacro %}

{#
    The newest `_dlt_load_id` the incremental model already holds, as a SQL literal ('' before
    any row: every load id is newer), read once when the model compiles, so filters on it are
    constants the warehouse can push into the scans. Load ids are epoch seconds as text of the
    same width (until 2286), so they compare as strings.
#}
{% macro close_watermark() -%}
    {%- if execute and this is not none and load_relation(this) is not none -%}
        {%- set result = run_query('select coalesce(max(_dlt_load_id), \'\') from ' ~ this) -%}
        '{{ result.columns[0].values()[0] }}'
    {%- else -%}
        ''
    {%- endif -%}
{%- endmacro %}

{#
    (org_id, segment, date_day) of every day that runs newer than `watermark` (close_watermark)
    read for one of `reports` (run ledger, successful reports only), whether or not Close
    returned rows for it. Empty while the loader writes no ledger.
#}
{% macro close_ledger_days(reports, watermark) -%}
    select distinct
        ledger.org_id,
        ledger.segment,
        ledger_dates.date_day
    from {{ ref('stg_close__run_ledger') }} as ledger
    inner join {{ ref('dim_dates') }} as ledger_dates
        on ledger_dates.date_day >= ledger.first_window_date
        and ledger_dates.date_day <= ledger.last_window_date
    where ledger.is_ok
        and ledger.run_id > {{ watermark }}
        and ledger.report_name in ({% for report in reports %}'{{ report }}'{% if not loop.last %}, {% endif %}{% endfor %})
{%- endmacro %}

{#
    True when an attribute the model copied from a dimension no longer matches it, for an
    entity the model holds — the model then recomputes every window. Each check: (columns:
    the entity's key and attributes, named alike in both; dimension: a relation with them;
    optional where on the model's rows), or a boolean SQL expression of its own. Run once when
    the model compiles.
#}
{% macro close_attributes_changed(checks) %}
    {%- if not execute -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set sql -%}
        select (
        {%- for check in checks %}
            {%- if check is string %}
            {{ check }}
            {%- else %}
            {%- set columns, dimension, where = check %}
            exists (
                select {{ columns | join(', ') }} from {{ this }} where {{ where or '1 = 1' }}
                except
                select {{ columns | join(', ') }} from {{ dimension }} as dimension_rows
            )
            {%- endif %}{% if not loop.last %} or{% endif %}
        {%- endfor %}
        ) as is_changed
    {%- endset -%}
    {{ return(close_query_is_true(sql)) }}
{% endmacro %}

{# The first value of a one-row query, as a boolean (false while parsing). #}
{% macro close_query_is_true(sql) %}
    {%- if not execute -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set value = run_query(sql).columns[0].values()[0] -%}
    {{ return(value in (true, 1, 'true', 'True')) }}
{% endmacro %}

{#
    The incremental plan of a window-replace model: false on a full build, when the mart does
    not exist yet or predates these columns, or when `attribute_checks` (see
    close_attributes_changed) find a changed dimension attribute — then every window is
    rebuilt; true: only the windows newer loads touched.
#}
{% macro close_incremental_windows(attribute_checks=[]) %}
    {%- if not close_is_incremental() -%}
        {{ return(false) }}
    {%- endif -%}
    {%- if attribute_checks and close_attributes_changed(attribute_checks) -%}
        {%- do log(this ~ ': a dimension attribute changed; rebuilding every window', info=true) -%}
        {{ return(false) }}
    {%- endif -%}
    {{ return(true) }}
{% endmacro %}

{#
    is_incremental(), and the existing mart already has the columns the incremental filters
    read (`_dlt_load_id`, `segment`). A mart built by an older version of this project has not:
    the model then selects everything, and `on_schema_change='fail'` asks for a
    `--full-refresh` (which dlt's dbt runner, and so `close-pipeline`, does by itself) instead
    of failing on a missing column.
#}
{% macro close_is_incremental() %}
    {%- if this is none or not is_incremental() -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set existing = load_relation(this) -%}
    {%- if existing is none -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set names = [] -%}
    {%- for column in adapter.get_columns_in_relation(existing) -%}
        {%- do names.append(column.name | lower) -%}
    {%- endfor -%}
    {{ return('_dlt_load_id' in names and 'segment' in names) }}
{% endmacro %}
