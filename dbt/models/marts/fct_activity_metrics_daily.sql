{#- Long form of the activity reports: every metric Close lists in activity_metrics that has a
    column in staging, unpivoted dynamically (key -> column from activity_metrics.column_name
    and the raw tables' columns at run time, so metrics a live org adds need no code change). -#}
{%- set overview_metrics = close_staged_metrics('activity_overview') -%}
{%- set user_metrics = close_staged_metrics('activity_by_user') -%}

with

activity_overview as (

    select * from {{ ref('stg_close__activity_overview') }}

),

activity_by_user as (

    select * from {{ ref('stg_close__activity_by_user') }}

),

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
        {{ close_unpivot_metrics('activity_overview', overview_metrics) }} as metric_value
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
        {{ close_unpivot_metrics('activity_by_user', user_metrics) }} as metric_value
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
        metric_values.metric_value

    from metric_values
    inner join metrics
        on metric_values.org_id = metrics.org_id
        and metric_values.metric_key = metrics.metric_key

)

select * from final
