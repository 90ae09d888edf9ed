{#
    A status's end-of-day count is the next day's start-of-day count, for leads and
    opportunities, within each segment, wherever both days were loaded. Returns the pairs of days that disagree.
#}
with

daily as (
{{ close_status_daily_union() }}
),

pairs as (

    select
        today.object_type,
        today.org_id,
        today.segment,
        today.status_id,
        today.status_date,
        today.count_ended,
        tomorrow.count_started as next_day_count_started
    from daily as today
    inner join daily as tomorrow
        on today.object_type = tomorrow.object_type
        and today.org_id = tomorrow.org_id
        and today.segment = tomorrow.segment
        and today.status_id = tomorrow.status_id
        and tomorrow.status_date = {{ add_days('today.status_date', 1) }}

)

select *
from pairs
where count_ended <> next_day_count_started
