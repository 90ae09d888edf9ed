{#- Pipelines from /pipeline/, plus pipeline ids that statuses or funnel reports mention. -#}
with

pipelines as (

    select * from {{ ref('stg_close__pipelines') }}

),

opportunity_statuses as (

    select * from {{ ref('stg_close__opportunity_statuses') }}

),

funnel_totals as (

    select * from {{ ref('stg_close__funnel_totals') }}

),

funnel_stages as (

    select * from {{ ref('stg_close__funnel_stages') }}

),

all_pipeline_ids as (

    select org_id, pipeline_id from pipelines
    union
    select org_id, pipeline_id from opportunity_statuses where pipeline_id is not null
    union
    select org_id, pipeline_id from funnel_totals
    union
    select org_id, pipeline_id from funnel_stages

),

pipeline_statuses as (

    select
        org_id,
        pipeline_id,
        count(*) as status_count,
        cast(sum(case when status_type = 'active' then 1 else 0 end) as bigint) as active_status_count,
        cast(sum(case when status_type = 'won' then 1 else 0 end) as bigint) as won_status_count,
        cast(sum(case when status_type = 'lost' then 1 else 0 end) as bigint) as lost_status_count
    from opportunity_statuses
    group by 1, 2

),

final as (

    select
        all_pipeline_ids.org_id,
        all_pipeline_ids.pipeline_id,
        coalesce(pipelines.pipeline_name, all_pipeline_ids.pipeline_id) as pipeline_name,
        coalesce(pipeline_statuses.status_count, 0) as status_count,
        coalesce(pipeline_statuses.active_status_count, 0) as active_status_count,
        coalesce(pipeline_statuses.won_status_count, 0) as won_status_count,
        coalesce(pipeline_statuses.lost_status_count, 0) as lost_status_count,
        pipelines.pipeline_id is not null as is_in_pipeline_list,
        pipelines.created_at,
        pipelines.updated_at

    from all_pipeline_ids
    left join pipelines
        on all_pipeline_ids.org_id = pipelines.org_id
        and all_pipeline_ids.pipeline_id = pipelines.pipeline_id
    left join pipeline_statuses
        on all_pipeline_ids.org_id = pipeline_statuses.org_id
        and all_pipeline_ids.pipeline_id = pipeline_statuses.pipeline_id

)

select * from final
