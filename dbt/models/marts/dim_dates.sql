{#- Calendar days covering every report window loaded, first window start to last window end. -#}
with

activity_overview as (

    select * from {{ ref('stg_close__activity_overview') }}

),

activity_by_user as (

    select * from {{ ref('stg_close__activity_by_user') }}

),

lead_status_overview as (

    select * from {{ ref('stg_close__lead_status_overview') }}

),

opportunity_status_overview as (

    select * from {{ ref('stg_close__opportunity_status_overview') }}

),

lead_status_transitions as (

    select * from {{ ref('stg_close__lead_status_transitions') }}

),

opportunity_status_transitions as (

    select * from {{ ref('stg_close__opportunity_status_transitions') }}

),

funnel_totals as (

    select * from {{ ref('stg_close__funnel_totals') }}

),

sent_emails as (

    select * from {{ ref('stg_close__sent_emails_by_template') }}

),

{#- bounds per report first: a few rows to union, not every window of two years #}
report_windows as (
    {%- for report in ['activity_overview', 'activity_by_user', 'lead_status_overview',
        'opportunity_status_overview', 'lead_status_transitions',
        'opportunity_status_transitions', 'funnel_totals', 'sent_emails'] %}
    select min(window_start_date) as window_start_date, max(window_end_date) as window_end_date
    from {{ report }}
    {% if not loop.last %}union all{% endif %}
    {%- endfor %}

),

bounds as (

    select
        min(window_start_date) as first_date,
        max(window_end_date) as end_date
    from report_windows

),

spine as (

    {{ close_date_spine('(select first_date from bounds)', '(select end_date from bounds)') }}

),

final as (

    select
        spine.date_day,
        cast({{ dbt.date_trunc('week', 'spine.date_day') }} as date) as week_start_date,
        {{ month_start('spine.date_day') }} as month_start_date,
        cast({{ dbt.dateadd('day', -1, dbt.dateadd('month', 1, month_start('spine.date_day'))) }} as date)
            as month_end_date,
        cast({{ dbt.date_trunc('quarter', 'spine.date_day') }} as date) as quarter_start_date,
        cast(extract(year from spine.date_day) as integer) as year_number,
        cast(extract(month from spine.date_day) as integer) as month_of_year,
        cast(extract(day from spine.date_day) as integer) as day_of_month,
        cast(extract(isodow from spine.date_day) as integer) as day_of_week_iso,
        case cast(extract(isodow from spine.date_day) as integer)
            when 1 then 'Monday'
            when 2 then 'Tuesday'
            when 3 then 'Wednesday'
            when 4 then 'Thursday'
            when 5 then 'Friday'
            when 6 then 'Saturday'
            else 'Sunday'
        end as day_name,
        cast(extract(isodow from spine.date_day) as integer) in (6, 7) as is_weekend

    from spine

)

select * from final
