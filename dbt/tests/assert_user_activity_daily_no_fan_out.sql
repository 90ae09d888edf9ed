{#
    No fan-out (and no gaps) in the daily fact: per org and segment, its rows = days in the
    segment's per-user report loaded range × the segment's users (unfiltered `_all`: every user
    of the org; another segment: the users its report mentions). Returns the (org, segment)
    pairs where the counts differ.
#}
with

user_activity_daily as (

    select * from {{ ref('fct_user_activity_daily') }}

),

activity_by_user as (

    select * from {{ ref('stg_close__activity_by_user') }}

),

dim_users as (

    select * from {{ ref('dim_users') }}

),

expected_days as (

    select
        org_id,
        segment,
        {{ dbt.datediff('min(activity_date)', 'max(activity_date)', 'day') }} + 1 as day_count
    from activity_by_user
    group by 1, 2

),

org_users as (

    select org_id, count(*) as user_count
    from dim_users
    group by 1

),

segment_users as (

    select org_id, segment, count(distinct user_id) as user_count
    from activity_by_user
    where segment <> {{ close_unfiltered_segment() }}
    group by 1, 2

),

actual as (

    select org_id, segment, count(*) as row_count
    from user_activity_daily
    group by 1, 2

),

compared as (

    select
        expected_days.org_id,
        expected_days.segment,
        expected_days.day_count * coalesce(
            case
                when expected_days.segment = {{ close_unfiltered_segment() }}
                    then org_users.user_count
                else segment_users.user_count
            end,
            0
        ) as expected_row_count,
        coalesce(actual.row_count, 0) as actual_row_count
    from expected_days
    left join org_users
        on expected_days.org_id = org_users.org_id
    left join segment_users
        on expected_days.org_id = segment_users.org_id
        and expected_days.segment = segment_users.segment
    left join actual
        on expected_days.org_id = actual.org_id
        and expected_days.segment = actual.segment

)

select *
from compared
where expected_row_count <> actual_row_count
