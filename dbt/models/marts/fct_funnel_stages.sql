{{ config(
    materialized='incremental',
    incremental_strategy='close_window_replace',
    unique_key=['org_id', 'segment', 'window_start_date'],
    on_schema_change='fail',
) }}
{#- Incremental: the months loads since the last build re-read (of either funnel report);
    every month when a pipeline or user name changed. #}
{%- set windows_only = close_incremental_windows([
    (['org_id', 'pipeline_id', 'pipeline_name'], ref('dim_pipelines'), none),
    (['org_id', 'user_id', 'user_name'], ref('dim_users'), 'not is_all_users'),
]) %}
{%- set watermark = close_watermark() if windows_only else "''" %}
with

{% if windows_only -%}
new_windows as (

    select org_id, segment, window_start_date from {{ ref('stg_close__funnel_stages') }}
    where _dlt_load_id > {{ watermark }}
    union
    select org_id, segment, window_start_date from {{ ref('stg_close__funnel_totals') }}
    where _dlt_load_id > {{ watermark }}

),

{% endif -%}
funnel_stages as (

    select funnel_stages.* from {{ ref('stg_close__funnel_stages') }} as funnel_stages
    {%- if windows_only %}
    inner join new_windows
        on new_windows.org_id = funnel_stages.org_id
        and new_windows.segment = funnel_stages.segment
        and new_windows.window_start_date = funnel_stages.window_start_date
    {%- endif %}

),

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

stage_neighbours as (

    select
        funnel_stages.*,
        lead(funnel_stages.stage_count) over (
            partition by
                funnel_stages.org_id,
                funnel_stages.segment,
                funnel_stages.window_start_date,
                funnel_stages.pipeline_id,
                funnel_stages.cohort_type,
                funnel_stages.user_id
            order by funnel_stages.stage_index
        ) as next_stage_count,
        first_value(funnel_stages.stage_count) over (
            partition by
                funnel_stages.org_id,
                funnel_stages.segment,
                funnel_stages.window_start_date,
                funnel_stages.pipeline_id,
                funnel_stages.cohort_type,
                funnel_stages.user_id
            order by funnel_stages.stage_index
        ) as first_stage_count
    from funnel_stages

),

with_cohort as (

    select
        stage_neighbours.*,
        funnel_totals.opportunity_count as cohort_count,
        funnel_totals._dlt_load_id as cohort_dlt_load_id
    from stage_neighbours
    left join funnel_totals
        on stage_neighbours.org_id = funnel_totals.org_id
        and stage_neighbours.segment = funnel_totals.segment
        and stage_neighbours.window_start_date = funnel_totals.window_start_date
        and stage_neighbours.pipeline_id = funnel_totals.pipeline_id
        and stage_neighbours.cohort_type = funnel_totals.cohort_type
        and stage_neighbours.user_id = funnel_totals.user_id

),

rates as (

    select
        with_cohort.*,
        {{ safe_divide('with_cohort.next_stage_count', 'with_cohort.stage_count') }}
            as conversion_rate_to_next_stage,
        {{ safe_divide('with_cohort.stage_count', 'with_cohort.first_stage_count') }}
            as conversion_rate_from_first_stage,
        {{ safe_divide('with_cohort.stage_count', 'with_cohort.cohort_count') }}
            as share_of_cohort,
        {{ safe_divide('with_cohort.lost_count', 'with_cohort.stage_count') }} as lost_rate
    from with_cohort

),

final as (

    select
        rates.org_id,
        rates.segment,
        rates.window_start_date,
        rates.pipeline_id,
        rates.cohort_type,
        rates.user_id,
        rates.status_id,
        rates.window_end_date,
        {{ month_start('rates.window_start_date') }} as month_start_date,
        rates.stage_index,
        rates.status_label,
        rates.status_type,
        dim_pipelines.pipeline_name,
        case when rates.is_all_users then 'All users' else dim_users.user_name end as user_name,
        rates.is_all_users,
        rates.cohort_count,
        rates.stage_count,
        rates.next_stage_count,
        rates.first_stage_count,
        rates.conversion_rate_to_next_stage,
        rates.conversion_rate_from_first_stage,
        rates.share_of_cohort,
        rates.lost_count,
        rates.lost_rate,
        rates.value_cents,
        rates.value_amount,
        rates.value_lost_cents,
        rates.value_lost_amount,
        rates.weighted_value_cents,
        rates.weighted_value_amount,
        rates.count_conversion_rate as close_count_conversion_rate,
        rates.count_lost_ratio as close_count_lost_ratio,
        rates.value_conversion_rate as close_value_conversion_rate,
        rates.value_lost_ratio as close_value_lost_ratio,
        rates.weighted_value_conversion_rate as close_weighted_value_conversion_rate,
        rates.average_time_to_advance_seconds,
        cast(rates.average_time_to_advance_seconds as {{ close_type_double() }}) / 86400
            as average_time_to_advance_days,
        {#- the newer of the stage's and its cohort's rows: both feed the row #}
        case
            when rates.cohort_dlt_load_id > rates._dlt_load_id then rates.cohort_dlt_load_id
            else rates._dlt_load_id
        end as _dlt_load_id

    from rates
    left join dim_pipelines
        on rates.org_id = dim_pipelines.org_id
        and rates.pipeline_id = dim_pipelines.pipeline_id
    left join dim_users
        on rates.org_id = dim_users.org_id
        and rates.user_id = dim_users.user_id

)

select * from final
