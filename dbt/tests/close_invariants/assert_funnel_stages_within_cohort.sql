{#
    No funnel stage holds more opportunities than its cohort: a stage's count never exceeds
    the `count` of the totals row for the same segment, window, pipeline, cohort type and user.
#}
with

funnel_stages as (

    select * from {{ ref('fct_funnel_stages') }}

),

funnel_totals as (

    select * from {{ ref('fct_funnel_totals') }}

),

compared as (

    select
        funnel_stages.org_id,
        funnel_stages.segment,
        funnel_stages.window_start_date,
        funnel_stages.pipeline_id,
        funnel_stages.cohort_type,
        funnel_stages.user_id,
        funnel_stages.status_id,
        funnel_stages.stage_count,
        funnel_totals.opportunity_count as cohort_count
    from funnel_stages
    inner join funnel_totals
        on funnel_stages.org_id = funnel_totals.org_id
        and funnel_stages.segment = funnel_totals.segment
        and funnel_stages.window_start_date = funnel_totals.window_start_date
        and funnel_stages.pipeline_id = funnel_totals.pipeline_id
        and funnel_stages.cohort_type = funnel_totals.cohort_type
        and funnel_stages.user_id = funnel_totals.user_id

)

select *
from compared
where stage_count > cohort_count
