{#- Long form of the activity reports: every metric Close lists in activity_metrics that has a
    column in staging, unpivoted dynamically (key -> column from activity_metrics.column_name
    and the raw tables' columns at run time, so metrics a live org adds need no code change).
    Incremental (see macros/close_incremental.sql): only the days loads since the last build
    re-read; every day when the metric list or a metric's attributes changed. -#}
{{ config(
    materialized='incremental',
    incremental_strategy='close_window_replace',
    unique_key=['org_id', 'segment', 'activity_date'],
    on_schema_change='fail',
) }}
{%- set overview_metrics = close_staged_metrics('activity_overview') -%}
{%- set user_metrics = close_staged_metrics('activity_by_user') -%}
{%- set metric_attributes = ['org_id', 'metric_key', 'metric_name', 'metric_object', 'metric_aggregation', 'metric_unit', 'is_additive'] -%}
{#- Whether a metric's attributes or the metric list changed. Every row of a metric carries
    the same attributes (all windows are rebuilt when they change), and every window holds every
    metric of its org: the rows of each org's latest day are a complete sample, so the check
    reads two columns of the mart, not all of it. -#}
{%- set latest_rows -%}
    (select {{ metric_attributes | join(', ') }} from {{ this }}
     where (org_id, activity_date) in (
        select org_id, max(activity_date) from {{ this }} group by org_id))
{%- endset -%}
{%- set metrics_changed -%}
    exists (
        select * from {{ latest_rows }} as latest
        except
        select {{ metric_attributes | join(', ') }} from {{ ref('dim_activity_metrics') }}
    )
    or exists (
        select org_id, metric_key from {{ ref('dim_activity_metrics') }}
        where org_id in (select org_id from {{ this }})
            and {{ close_metric_key_filter(overview_metrics + user_metrics) | replace('metrics.', '') }}
        except
        select org_id, metric_key from {{ latest_rows }} as latest
    )
{%- endset -%}
{%- set windows_only = close_incremental_windows([metrics_changed]) -%}
{%- set watermark = close_watermark() if windows_only else "''" %}

with

{% if windows_only -%}
new_days as (

    select org_id, segment, activity_date from {{ ref('stg_close__activity_overview') }}
    where _dlt_load_id > {{ watermark }}
    union
    select org_id, segment, activity_date from {{ ref('stg_close__activity_by_user') }}
    where _dlt_load_id > {{ watermark }}

),

{% endif -%}
{%- for name in ['activity_overview', 'activity_by_user'] %}
{{ name }} as (

    select {{ name }}.* from {{ ref('stg_close__' ~ name) }} as {{ name }}
    {%- if windows_only %}
    inner join new_days
        on new_days.org_id = {{ name }}.org_id
        and new_days.segment = {{ name }}.segment
        and new_days.activity_date = {{ name }}.activity_date
    {%- endif %}

),
{% endfor %}
metrics as (

    select * from {{ ref('dim_activity_metrics') }}

),

org_metric_values as (

    select
        activity_overview.org_id,
        activity_overview.segment,
        activity_overview.activity_date,
        cast('_org' as {{ dbt.type_string() }}) as user_id,
        metrics.metric_key,
        {{ close_unpivot_metrics('activity_overview', overview_metrics) }} as metric_value,
        activity_overview._dlt_load_id
    from activity_overview
    inner join metrics
        on activity_overview.org_id = metrics.org_id
    where {{ close_metric_key_filter(overview_metrics) }}

),

user_metric_values as (

    select
        activity_by_user.org_id,
        activity_by_user.segment,
        activity_by_user.activity_date,
        activity_by_user.user_id,
        metrics.metric_key,
        {{ close_unpivot_metrics('activity_by_user', user_metrics) }} as metric_value,
        activity_by_user._dlt_load_id
    from activity_by_user
    inner join metrics
        on activity_by_user.org_id = metrics.org_id
    where {{ close_metric_key_filter(user_metrics) }}

),

metric_values as (

    select * from org_metric_values
    union all
    select * from user_metric_values

),

final as (

    select
        metric_values.org_id,
        metric_values.segment,
        metric_values.activity_date,
        metric_values.user_id,
        metric_values.metric_key,
        metric_values.user_id = '_org' as is_org_total,
        metrics.metric_name,
        metrics.metric_object,
        metrics.metric_aggregation,
        metrics.metric_unit,
        metrics.is_additive,
        metric_values.metric_value,
        metric_values._dlt_load_id

    from metric_values
    inner join metrics
        on metric_values.org_id = metrics.org_id
        and metric_values.metric_key = metrics.metric_key

)

select * from final
