{#- One row per segment, user and day, zero-filled: a date spine over the days the per-user
    report was loaded for the segment, crossed with the segment's users, left-joined to Close's
    per-user rows. -#}
{{ config(
    materialized='incremental',
    incremental_strategy='close_window_replace',
    unique_key=['org_id', 'segment', 'user_id', 'activity_date'],
    on_schema_change='fail',
) }}
-- depends_on: {{ ref('stg_close__run_ledger') }}
{%- set named = close_documented_metrics() | rejectattr('is_average') | list %}
{%- set incremental = close_incremental_windows() %}
{%- set watermark = close_watermark() if incremental else "''" %}

with

dim_users as (

    select * from {{ ref('dim_users') }}

),

dim_dates as (

    select * from {{ ref('dim_dates') }}

),

activity_by_user as (

    select * from {{ ref('stg_close__activity_by_user') }}

),

segment_date_ranges as (

    select
        org_id,
        segment,
        min(activity_date) as first_activity_date,
        max(activity_date) as last_activity_date
    from activity_by_user
    group by 1, 2

),

{#- Unfiltered (`_all`): every user of the org. A segment: the users its report mentions in
    the loaded range (a segment of one team's reps lists that team, not the whole org). #}
segment_users as (

    select
        segment_date_ranges.org_id,
        segment_date_ranges.segment,
        dim_users.user_id,
        dim_users.user_name
    from segment_date_ranges
    inner join dim_users
        on segment_date_ranges.org_id = dim_users.org_id
    where segment_date_ranges.segment = {{ close_unfiltered_segment() }}

    union all

    select
        reported.org_id,
        reported.segment,
        dim_users.user_id,
        dim_users.user_name
    from (
        select distinct org_id, segment, user_id
        from activity_by_user
        where segment <> {{ close_unfiltered_segment() }}
    ) as reported
    inner join dim_users
        on reported.org_id = dim_users.org_id
        and reported.user_id = dim_users.user_id

),

date_spine as (

    select
        segment_date_ranges.org_id,
        segment_date_ranges.segment,
        dim_dates.date_day as activity_date,
        dim_dates.week_start_date,
        dim_dates.month_start_date
    from segment_date_ranges
    inner join dim_dates
        on dim_dates.date_day >= segment_date_ranges.first_activity_date
        and dim_dates.date_day <= segment_date_ranges.last_activity_date

),

{% if incremental -%}
{#- Incremental (replaced per user and day): the days a load since the last build re-read
    (rows, or the run ledger's windows: a re-read day can come back empty), days outside the
    range modelled so far, and every day of a user who is new to the segment or renamed. #}
new_days as (

    select org_id, segment, activity_date from activity_by_user
    where _dlt_load_id > {{ watermark }}
    union
    {{ close_ledger_days(['activity_by_user'], watermark) }}

),

modelled_ranges as (

    select
        org_id,
        segment,
        min(activity_date) as first_activity_date,
        max(activity_date) as last_activity_date
    from {{ this }}
    group by 1, 2

),

changed_users as (

    select org_id, segment, user_id, user_name from segment_users
    except
    select org_id, segment, user_id, user_name from {{ this }}

),

{% endif -%}
user_days as (

    select
        date_spine.org_id,
        date_spine.segment,
        segment_users.user_id,
        segment_users.user_name,
        date_spine.activity_date,
        date_spine.week_start_date,
        date_spine.month_start_date
    from date_spine
    inner join segment_users
        on date_spine.org_id = segment_users.org_id
        and date_spine.segment = segment_users.segment
    {%- if incremental %}
    where exists (
            select 1 from new_days
            where new_days.org_id = date_spine.org_id
                and new_days.segment = date_spine.segment
                and new_days.activity_date = date_spine.activity_date
        )
        or not exists (
            select 1 from modelled_ranges
            where modelled_ranges.org_id = date_spine.org_id
                and modelled_ranges.segment = date_spine.segment
                and date_spine.activity_date >= modelled_ranges.first_activity_date
                and date_spine.activity_date <= modelled_ranges.last_activity_date
        )
        or exists (
            select 1 from changed_users
            where changed_users.org_id = segment_users.org_id
                and changed_users.segment = segment_users.segment
                and changed_users.user_id = segment_users.user_id
        )
    {%- endif %}

),

zero_filled as (

    select
        user_days.org_id,
        user_days.segment,
        user_days.user_id,
        user_days.activity_date,
        user_days.week_start_date,
        user_days.month_start_date,
        user_days.user_name,
        activity_by_user.user_id is not null as has_report_row,
        {%- for metric in named %}
        coalesce(activity_by_user.{{ metric.name }}, 0) as {{ metric.name }},
        {%- endfor %}
        activity_by_user._dlt_load_id

    from user_days
    left join activity_by_user
        on user_days.org_id = activity_by_user.org_id
        and user_days.segment = activity_by_user.segment
        and user_days.user_id = activity_by_user.user_id
        and user_days.activity_date = activity_by_user.activity_date

),

final as (

    select
        zero_filled.*,
        {%- for output, duration, count in close_call_duration_averages() %}
        {{ safe_divide(duration, count) }} as {{ output }},
        {%- endfor %}
        {%- for metric in named if metric.name.endswith('_cents') %}
        {{ cents_to_amount(metric.name) }} as {{ metric.name[:-6] }}_amount,
        {%- endfor %}
        {{ seconds_to_minutes('calls_duration_seconds') }} as calls_duration_minutes

    from zero_filled

)

select * from final
