{#
    No fan-out (and no gaps) in the daily fact: per org, its rows = days in the per-user
    report's loaded range × users of the org. Returns the orgs where the counts differ.
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
        {{ dbt.datediff('min(activity_date)', 'max(activity_date)', 'day') }} + 1 as day_count
    from activity_by_user
    group by 1

),

expected_users as (

    select org_id, count(*) as user_count
    from dim_users
    group by 1

),

actual as (

    select org_id, count(*) as row_count
    from user_activity_daily
    group by 1

),

compared as (

    select
        expected_days.org_id,
        expected_days.day_count * coalesce(expected_users.user_count, 0) as expected_row_count,
        coalesce(actual.row_count, 0) as actual_row_count
    from expected_days
    left join expected_users
        on expected_days.org_id = expected_users.org_id
    left join actual
        on expected_days.org_id = actual.org_id

)

select *
from compared
where expected_row_count <> actual_row_count
