{#- The monthly numbers a sales manager asks for, per rep: activity from the zero-filled daily
    fact summed by calendar month; average time to win from the month's active-stage-cohort
    funnel totals, weighted by won count across pipelines. -#}
with

user_activity_daily as (

    select * from {{ ref('fct_user_activity_daily') }}

),

funnel_totals as (

    select * from {{ ref('fct_funnel_totals') }}

),

{#- Sums of integers are cast back to bigint: the sum of a bigint is a HUGEINT on DuckDB and a
    numeric on Postgres; bigint keeps the column types the same on every warehouse. #}
monthly_activity as (

    select
        org_id,
        segment,
        user_id,
        month_start_date,
        max(user_name) as user_name,
        count(*) as days_in_data,
        cast(sum(case when has_report_row then 1 else 0 end) as bigint) as days_with_report_row,
        cast(sum(calls_count) as bigint) as calls_count,
        cast(sum(outbound_calls_count) as bigint) as outbound_calls_count,
        cast(sum(calls_duration_seconds) as bigint) as calls_duration_seconds,
        cast(sum(emails_sent_count) as bigint) as emails_sent_count,
        cast(sum(
            sequence_emails_sent_with_reply_count
            + manual_emails_sent_with_reply_count
            + bulk_emails_sent_with_reply_count
        ) as bigint) as emails_replied_count,
        cast(sum(sms_sent_count) as bigint) as sms_sent_count,
        cast(sum(leads_created_count) as bigint) as leads_created_count,
        cast(sum(leads_contacted_count) as bigint) as leads_contacted_count,
        cast(sum(opportunities_created_count) as bigint) as opportunities_created_count,
        cast(sum(opportunities_won_count) as bigint) as opportunities_won_count,
        cast(sum(opportunities_lost_count) as bigint) as opportunities_lost_count,
        cast(sum(
            opportunities_won_one_time_value_cents
            + opportunities_won_monthly_value_cents
            + opportunities_won_annual_value_cents
        ) as bigint) as won_value_cents,
        cast(sum(opportunities_won_annualized_value_cents) as bigint) as won_annualized_value_cents
    from user_activity_daily
    group by 1, 2, 3, 4

),

monthly_time_to_win as (

    select
        org_id,
        segment,
        user_id,
        month_start_date,
        sum(average_time_to_win_seconds * won_count) as weighted_time_to_win_seconds,
        sum(case when average_time_to_win_seconds is not null then won_count else 0 end)
            as won_count_with_time
    from funnel_totals
    where cohort_type = 'active-stage-cohort'
        and not is_all_users
    group by 1, 2, 3, 4

),

final as (

    select
        monthly_activity.org_id,
        monthly_activity.segment,
        monthly_activity.user_id,
        monthly_activity.month_start_date,
        monthly_activity.user_name,
        monthly_activity.days_in_data,
        monthly_activity.days_with_report_row,
        monthly_activity.calls_count,
        monthly_activity.outbound_calls_count,
        monthly_activity.calls_duration_seconds,
        {{ seconds_to_minutes('monthly_activity.calls_duration_seconds') }} as calls_duration_minutes,
        {{ safe_divide('monthly_activity.calls_duration_seconds', 'monthly_activity.calls_count') }}
            as average_call_duration_seconds,
        monthly_activity.emails_sent_count,
        monthly_activity.emails_replied_count,
        {{ safe_divide('monthly_activity.emails_replied_count', 'monthly_activity.emails_sent_count') }}
            as email_reply_rate,
        monthly_activity.sms_sent_count,
        monthly_activity.leads_created_count,
        monthly_activity.leads_contacted_count,
        monthly_activity.opportunities_created_count,
        monthly_activity.opportunities_won_count,
        monthly_activity.opportunities_lost_count,
        monthly_activity.won_value_cents,
        {{ cents_to_amount('monthly_activity.won_value_cents') }} as won_value_amount,
        monthly_activity.won_annualized_value_cents,
        {{ cents_to_amount('monthly_activity.won_annualized_value_cents') }} as won_annualized_value_amount,
        {{ safe_divide(
            'monthly_activity.opportunities_won_count',
            'monthly_activity.opportunities_won_count + monthly_activity.opportunities_lost_count'
        ) }} as win_rate,
        {{ safe_divide(
            'monthly_time_to_win.weighted_time_to_win_seconds',
            'monthly_time_to_win.won_count_with_time'
        ) }} as average_time_to_win_seconds,
        {{ safe_divide(
            'monthly_time_to_win.weighted_time_to_win_seconds',
            'monthly_time_to_win.won_count_with_time * 86400'
        ) }} as average_time_to_win_days

    from monthly_activity
    left join monthly_time_to_win
        on monthly_activity.org_id = monthly_time_to_win.org_id
        and monthly_activity.segment = monthly_time_to_win.segment
        and monthly_activity.user_id = monthly_time_to_win.user_id
        and monthly_activity.month_start_date = monthly_time_to_win.month_start_date

)

select * from final
