{#- Current lead statuses from /status/lead/, plus every status the lead status reports mention
    (deleted statuses are absent from the list but keep their history in the reports). -#}
with

lead_statuses as (

    select * from {{ ref('stg_close__lead_statuses') }}

),

lead_status_overview as (

    select * from {{ ref('stg_close__lead_status_overview') }}

),

lead_status_transitions as (

    select * from {{ ref('stg_close__lead_status_transitions') }}

),

reported_statuses as (

    select
        org_id,
        status_id,
        status_label,
        is_status_deleted,
        window_start_date
    from lead_status_overview

    union all

    select
        org_id,
        to_status_id as status_id,
        to_status_label as status_label,
        is_to_status_deleted as is_status_deleted,
        window_start_date
    from lead_status_transitions

    union all

    select
        org_id,
        from_status_id as status_id,
        from_status_label as status_label,
        is_from_status_deleted as is_status_deleted,
        window_start_date
    from lead_status_transitions
    where from_status_id is not null

),

{#- one row per status and label first (a few hundred rows, not every report row) #}
reported_labels as (

    select
        org_id,
        status_id,
        status_label,
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
        max(deleted_flag) over (partition by org_id, status_id) as reported_deleted_flag,
        min(first_window_start_date) over (partition by org_id, status_id) as first_reported_date,
        max(window_start_date) over (partition by org_id, status_id) as last_reported_date
    from reported_labels

),

latest_reported_statuses as (

    select * from reported_statuses_ranked where recency_rank = 1

),

all_status_ids as (

    select org_id, status_id from lead_statuses
    union
    select org_id, status_id from latest_reported_statuses

),

final as (

    select
        all_status_ids.org_id,
        all_status_ids.status_id,
        coalesce(
            lead_statuses.status_label,
            latest_reported_statuses.status_label,
            all_status_ids.status_id
        ) as status_label,
        coalesce(latest_reported_statuses.reported_deleted_flag, 0) = 1 as is_deleted,
        lead_statuses.status_id is not null as is_in_status_list,
        latest_reported_statuses.first_reported_date,
        latest_reported_statuses.last_reported_date

    from all_status_ids
    left join lead_statuses
        on all_status_ids.org_id = lead_statuses.org_id
        and all_status_ids.status_id = lead_statuses.status_id
    left join latest_reported_statuses
        on all_status_ids.org_id = latest_reported_statuses.org_id
        and all_status_ids.status_id = latest_reported_statuses.status_id

)

select * from final
