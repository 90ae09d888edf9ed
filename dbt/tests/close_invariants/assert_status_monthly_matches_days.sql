{#
    The month-grain reports agree with the day-grain ones at the month's edges: a month's
    start-of-period count is its first day's start-of-day count, and its end-of-period count is
    its last day's end-of-day count, within each segment (checked where those days were loaded). The counters in
    between (gained, lost, entered, left) are not comparable: a month counts each object once.
#}
with

status_monthly as (

    select * from {{ ref('fct_status_monthly') }}

),

daily as (
{{ close_status_daily_union() }}
),

first_days as (

    select
        status_monthly.object_type,
        status_monthly.org_id,
        status_monthly.segment,
        status_monthly.status_id,
        status_monthly.window_start_date,
        'count_started' as counter,
        status_monthly.count_started as month_value,
        daily.count_started as day_value
    from status_monthly
    inner join daily
        on status_monthly.object_type = daily.object_type
        and status_monthly.org_id = daily.org_id
        and status_monthly.segment = daily.segment
        and status_monthly.status_id = daily.status_id
        and status_monthly.window_start_date = daily.status_date

),

last_days as (

    select
        status_monthly.object_type,
        status_monthly.org_id,
        status_monthly.segment,
        status_monthly.status_id,
        status_monthly.window_start_date,
        'count_ended' as counter,
        status_monthly.count_ended as month_value,
        daily.count_ended as day_value
    from status_monthly
    inner join daily
        on status_monthly.object_type = daily.object_type
        and status_monthly.org_id = daily.org_id
        and status_monthly.segment = daily.segment
        and status_monthly.status_id = daily.status_id
        and {{ add_days('status_monthly.window_end_date', -1) }} = daily.status_date

),

compared as (

    select * from first_days
    union all
    select * from last_days

)

select *
from compared
where month_value <> day_value
