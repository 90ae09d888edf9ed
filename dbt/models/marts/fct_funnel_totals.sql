{{ config(
    materialized='incremental',
    incremental_strategy='close_window_replace',
    unique_key=['org_id', 'segment', 'window_start_date'],
    on_schema_change='fail',
) }}
{#- Incremental: the months loads since the last build re-read;
    every month when a pipeline or user name changed. #}
{%- set windows_only = close_incremental_windows([
    (['org_id', 'pipeline_id', 'pipeline_name'], ref('dim_pipelines'), none),
    (['org_id', 'user_id', 'user_name'], ref('dim_users'), 'not is_all_users'),
]) %}
{%- set watermark = close_watermark() if windows_only else "''" %}
with

{% if windows_only -%}
new_windows as (

    select distinct org_id, segment, window_start_date from {{ ref('stg_close__funnel_totals') }}
    where _dlt_load_id > {{ watermark }}

),

{% endif -%}
funnel_totals as (

    select funnel_totals.* from {{ ref('stg_close__funnel_totals') }} as funnel_totals
    {%- if windows_only %}
    inner join new_windows
        on new_windows.org_id = funnel_totals.org_id
        and new_windows.segment = funnel_totals.segment
        and new_windows.window_start_date = funnel_totals.window_start_date
    {%- endif %}

),

dim_pipelines as (

    select * from {{ ref('dim_pipelines') }}

),

dim_users as (

    select * from {{ ref('dim_users') }}

),

rates as (

    select
        funnel_totals.*,
        funnel_totals.complete_count - funnel_totals.won_count as lost_count,
        funnel_totals.opportunity_count - funnel_totals.complete_count as open_count,
        funnel_totals.value_complete_cents - funnel_totals.value_won_cents as value_lost_cents,
        {{ safe_divide('funnel_totals.won_count', 'funnel_totals.complete_count') }} as win_rate,
        {{ safe_divide('funnel_totals.value_won_cents', 'funnel_totals.value_complete_cents') }}
            as value_win_rate_computed,
        {{ safe_divide('funnel_totals.won_count', 'funnel_totals.opportunity_count') }}
            as conversion_rate,
        {{ safe_divide('funnel_totals.complete_count', 'funnel_totals.opportunity_count') }}
            as completion_rate
    from funnel_totals

),

final as (

    select
        rates.org_id,
        rates.segment,
        rates.window_start_date,
        rates.pipeline_id,
        rates.cohort_type,
        rates.user_id,
        rates.window_end_date,
        {{ month_start('rates.window_start_date') }} as month_start_date,
        dim_pipelines.pipeline_name,
        case when rates.is_all_users then 'All users' else dim_users.user_name end as user_name,
        rates.is_all_users,
        rates.opportunity_count,
        rates.complete_count,
        rates.won_count,
        rates.lost_count,
        rates.open_count,
        rates.win_rate,
        rates.conversion_rate,
        rates.completion_rate,
        rates.value_complete_cents,
        {{ cents_to_amount('rates.value_complete_cents') }} as value_complete_amount,
        rates.value_won_cents,
        {{ cents_to_amount('rates.value_won_cents') }} as value_won_amount,
        rates.value_lost_cents,
        {{ cents_to_amount('rates.value_lost_cents') }} as value_lost_amount,
        rates.value_win_rate_computed as value_win_rate,
        rates.count_win_rate as close_count_win_rate,
        rates.value_win_rate as close_value_win_rate,
        rates.average_time_to_win_seconds,
        cast(rates.average_time_to_win_seconds as {{ close_type_double() }}) / 86400 as average_time_to_win_days,
        rates.average_annualized_value_per_won_cents,
        rates.average_annualized_value_per_won_amount,
        rates.sales_velocity,
        rates._dlt_load_id

    from rates
    left join dim_pipelines
        on rates.org_id = dim_pipelines.org_id
        and rates.pipeline_id = dim_pipelines.pipeline_id
    left join dim_users
        on rates.org_id = dim_users.org_id
        and rates.user_id = dim_users.user_id

)

select * from final
