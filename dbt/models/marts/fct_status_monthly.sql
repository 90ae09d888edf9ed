{#- Month-grain status reports as Close computed them for the calendar month (month to date
    while it is open). Never summed from days: a month's gained / lost / entered / left count
    each object once, a sum of days would count every round trip. -#}
with

lead_status_overview as (

    select * from {{ ref('stg_close__lead_status_overview') }}

),

opportunity_status_overview as (

    select * from {{ ref('stg_close__opportunity_status_overview') }}

),

dim_lead_statuses as (

    select * from {{ ref('dim_lead_statuses') }}

),

dim_opportunity_statuses as (

    select * from {{ ref('dim_opportunity_statuses') }}

),

monthly as (

    select
        cast('lead' as {{ dbt.type_string() }}) as object_type,
        lead_status_overview.org_id,
        lead_status_overview.segment,
        lead_status_overview.status_id,
        lead_status_overview.window_start_date,
        lead_status_overview.window_end_date,
        dim_lead_statuses.status_label,
        dim_lead_statuses.is_deleted as is_status_deleted,
        lead_status_overview.count_started,
        lead_status_overview.count_ended,
        lead_status_overview.count_change,
        lead_status_overview.change_percent,
        lead_status_overview.count_gained,
        lead_status_overview.count_lost,
        lead_status_overview.count_entered,
        lead_status_overview.count_left
    from lead_status_overview
    left join dim_lead_statuses
        on lead_status_overview.org_id = dim_lead_statuses.org_id
        and lead_status_overview.status_id = dim_lead_statuses.status_id
    where lead_status_overview.grain = 'month'

    union all

    select
        cast('opportunity' as {{ dbt.type_string() }}) as object_type,
        opportunity_status_overview.org_id,
        opportunity_status_overview.segment,
        opportunity_status_overview.status_id,
        opportunity_status_overview.window_start_date,
        opportunity_status_overview.window_end_date,
        dim_opportunity_statuses.status_label,
        dim_opportunity_statuses.is_deleted as is_status_deleted,
        opportunity_status_overview.count_started,
        opportunity_status_overview.count_ended,
        opportunity_status_overview.count_change,
        opportunity_status_overview.change_percent,
        opportunity_status_overview.count_gained,
        opportunity_status_overview.count_lost,
        opportunity_status_overview.count_entered,
        opportunity_status_overview.count_left
    from opportunity_status_overview
    left join dim_opportunity_statuses
        on opportunity_status_overview.org_id = dim_opportunity_statuses.org_id
        and opportunity_status_overview.status_id = dim_opportunity_statuses.status_id
    where opportunity_status_overview.grain = 'month'

),

final as (

    select
        object_type,
        org_id,
        segment,
        status_id,
        {{ month_start('window_start_date') }} as month_start_date,
        window_start_date,
        window_end_date,
        cast({{ dbt.datediff('window_start_date', 'window_end_date', 'day') }} as bigint) as days_in_window,
        (
            window_start_date = {{ month_start('window_start_date') }}
            and window_end_date = cast({{ dbt.dateadd('month', 1, month_start('window_start_date')) }} as date)
        ) as is_complete_month,
        status_label,
        is_status_deleted,
        count_started,
        count_ended,
        count_change,
        change_percent,
        count_gained,
        count_lost,
        count_entered,
        count_left

    from monthly

)

select * from final
