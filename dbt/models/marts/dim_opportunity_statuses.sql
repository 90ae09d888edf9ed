{#- Current opportunity statuses from /status/opportunity/, plus every status the status and
    funnel reports mention (deleted statuses keep their history in the reports). -#}
with

opportunity_statuses as (

    select * from {{ ref('stg_close__opportunity_statuses') }}

),

pipelines as (

    select * from {{ ref('stg_close__pipelines') }}

),

opportunity_status_overview as (

    select * from {{ ref('stg_close__opportunity_status_overview') }}

),

opportunity_status_transitions as (

    select * from {{ ref('stg_close__opportunity_status_transitions') }}

),

funnel_stages as (

    select * from {{ ref('stg_close__funnel_stages') }}

),

reported_statuses as (

    select
        org_id,
        status_id,
        status_label,
        is_status_deleted,
        cast(null as {{ dbt.type_string() }}) as status_type,
        cast(null as {{ dbt.type_string() }}) as pipeline_id,
        window_start_date
    from opportunity_status_overview

    union all

    select
        org_id,
        to_status_id as status_id,
        to_status_label as status_label,
        is_to_status_deleted as is_status_deleted,
        cast(null as {{ dbt.type_string() }}) as status_type,
        cast(null as {{ dbt.type_string() }}) as pipeline_id,
        window_start_date
    from opportunity_status_transitions

    union all

    select
        org_id,
        from_status_id as status_id,
        from_status_label as status_label,
        is_from_status_deleted as is_status_deleted,
        cast(null as {{ dbt.type_string() }}) as status_type,
        cast(null as {{ dbt.type_string() }}) as pipeline_id,
        window_start_date
    from opportunity_status_transitions
    where from_status_id is not null

    union all

    select
        org_id,
        status_id,
        status_label,
        cast(null as boolean) as is_status_deleted,
        status_type,
        pipeline_id,
        window_start_date
    from funnel_stages

),

{#- one row per status and label first (a few hundred rows, not every report row) #}
reported_labels as (

    select
        org_id,
        status_id,
        status_label,
        max(status_type) as status_type,
        max(pipeline_id) as pipeline_id,
        max(case when is_status_deleted then 1 else 0 end) as deleted_flag,
        min(window_start_date) as first_window_start_date,
        max(window_start_date) as window_start_date
    from reported_statuses
    group by 1, 2, 3

),

reported_statuses_ranked as (

    select
        reported_labels.*,
        row_number() over (
            partition by org_id, status_id
            order by window_start_date desc nulls last, status_label nulls last
        ) as recency_rank,
        max(status_type) over (partition by org_id, status_id) as reported_status_type,
        max(pipeline_id) over (partition by org_id, status_id) as reported_pipeline_id,
        max(deleted_flag) over (partition by org_id, status_id) as reported_deleted_flag,
        min(first_window_start_date) over (partition by org_id, status_id) as first_reported_date,
        max(window_start_date) over (partition by org_id, status_id) as last_reported_date
    from reported_labels

),

latest_reported_statuses as (

    select * from reported_statuses_ranked where recency_rank = 1

),

all_status_ids as (

    select org_id, status_id from opportunity_statuses
    union
    select org_id, status_id from latest_reported_statuses

),

final as (

    select
        all_status_ids.org_id,
        all_status_ids.status_id,
        coalesce(
            opportunity_statuses.status_label,
            latest_reported_statuses.status_label,
            all_status_ids.status_id
        ) as status_label,
        coalesce(
            opportunity_statuses.status_type,
            latest_reported_statuses.reported_status_type
        ) as status_type,
        coalesce(
            opportunity_statuses.pipeline_id,
            latest_reported_statuses.reported_pipeline_id
        ) as pipeline_id,
        pipelines.pipeline_name,
        opportunity_statuses.stage_index,
        coalesce(latest_reported_statuses.reported_deleted_flag, 0) = 1 as is_deleted,
        opportunity_statuses.status_id is not null as is_in_status_list,
        latest_reported_statuses.first_reported_date,
        latest_reported_statuses.last_reported_date

    from all_status_ids
    left join opportunity_statuses
        on all_status_ids.org_id = opportunity_statuses.org_id
        and all_status_ids.status_id = opportunity_statuses.status_id
    left join latest_reported_statuses
        on all_status_ids.org_id = latest_reported_statuses.org_id
        and all_status_ids.status_id = latest_reported_statuses.status_id
    left join pipelines
        on all_status_ids.org_id = pipelines.org_id
        and coalesce(
            opportunity_statuses.pipeline_id,
            latest_reported_statuses.reported_pipeline_id
        ) = pipelines.pipeline_id

)

select * from final
