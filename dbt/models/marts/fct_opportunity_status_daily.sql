with

opportunity_status_overview as (

    select * from {{ ref('stg_close__opportunity_status_overview') }}

),

dim_opportunity_statuses as (

    select * from {{ ref('dim_opportunity_statuses') }}

),

daily as (

    select * from opportunity_status_overview where grain = 'day'

),

final as (

    select
        daily.org_id,
        daily.status_id,
        daily.window_start_date as status_date,
        daily.window_end_date,
        dim_opportunity_statuses.status_label,
        dim_opportunity_statuses.status_type,
        dim_opportunity_statuses.pipeline_id,
        dim_opportunity_statuses.is_deleted as is_status_deleted,
        daily.count_started,
        daily.count_ended,
        daily.count_change,
        daily.change_percent,
        daily.count_gained,
        daily.count_lost,
        daily.count_entered,
        daily.count_left,
        daily.ended_opportunities_page_url

    from daily
    left join dim_opportunity_statuses
        on daily.org_id = dim_opportunity_statuses.org_id
        and daily.status_id = dim_opportunity_statuses.status_id

)

select * from final
