with

funnel_stages as (

    select * from {{ ref('stg_close__funnel_stages') }}

),

funnel_totals as (

    select * from {{ ref('stg_close__funnel_totals') }}

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
        funnel_totals.opportunity_count as cohort_count
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
            as average_time_to_advance_days

    from rates
    left join dim_pipelines
        on rates.org_id = dim_pipelines.org_id
        and rates.pipeline_id = dim_pipelines.pipeline_id
    left join dim_users
        on rates.org_id = dim_users.org_id
        and rates.user_id = dim_users.user_id

)

select * from final
