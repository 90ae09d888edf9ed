{#
    Org totals (overview) = the sum of the per-user rows, per org, segment (the same filter on
    both reports), day and additive metric
    (counts and sums; not averages, and not distinct counts such as leads contacted, see
    var close_non_additive_metric_keys). A user missing on a day counts 0. Checked on the
    days inside the per-user report's loaded range, where the overview was also loaded.
    Returns one row per (org, day, metric) where they differ. Checks the days the last
    incremental run rebuilt (close_tested_rows); the loaded range is the whole mart's.
#}
with

metric_values as (

    select * from {{ close_tested_rows(ref('fct_activity_metrics_daily')) }} as tested_rows

),

all_user_rows as (

    select org_id, segment, activity_date
    from {{ ref('fct_activity_metrics_daily') }}
    where not is_org_total

),

org_totals as (

    select org_id, segment, activity_date, metric_key, metric_value as org_value
    from metric_values
    where is_org_total and is_additive

),

user_sums as (

    select org_id, segment, activity_date, metric_key, sum(metric_value) as users_value
    from metric_values
    where not is_org_total and is_additive
    group by 1, 2, 3, 4

),

user_ranges as (

    select org_id, segment, min(activity_date) as first_date, max(activity_date) as last_date
    from all_user_rows
    group by 1, 2

),

compared as (

    select
        org_totals.org_id,
        org_totals.segment,
        org_totals.activity_date,
        org_totals.metric_key,
        coalesce(org_totals.org_value, 0) as org_value,
        coalesce(user_sums.users_value, 0) as users_value
    from org_totals
    inner join user_ranges
        on org_totals.org_id = user_ranges.org_id
        and org_totals.segment = user_ranges.segment
        and org_totals.activity_date between user_ranges.first_date and user_ranges.last_date
    left join user_sums
        on org_totals.org_id = user_sums.org_id
        and org_totals.segment = user_sums.segment
        and org_totals.activity_date = user_sums.activity_date
        and org_totals.metric_key = user_sums.metric_key

)

select *
from compared
where abs(org_value - users_value) > 0.000001
