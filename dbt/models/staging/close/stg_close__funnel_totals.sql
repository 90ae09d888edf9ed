with

source as (

    select * from {{ close_source('funnel_totals') }}

),

renamed as (

    select

        ----------  ids
        org_id,
        {{ close_segment('funnel_totals') }} as segment,
        pipeline_id,
        user_id,

        ----------  strings
        cohort_type,
        timezone as report_timezone,

        ----------  numerics
        {{ adapter.quote('count') }} as opportunity_count,
        count_total_complete as complete_count,
        count_total_won as won_count,
        count_win_rate,
        value_total_complete as value_complete_cents,
        {{ cents_to_amount('value_total_complete') }} as value_complete_amount,
        value_total_won as value_won_cents,
        {{ cents_to_amount('value_total_won') }} as value_won_amount,
        value_win_rate,
        average_time_to_win as average_time_to_win_seconds,
        {{ seconds_to_minutes('average_time_to_win') }} as average_time_to_win_minutes,
        average_value_annualized_per_won_opportunity as average_annualized_value_per_won_cents,
        {{ cents_to_amount('average_value_annualized_per_won_opportunity') }} as average_annualized_value_per_won_amount,
        sales_velocity,

        ----------  booleans
        coalesce(user_id = '_all', false) as is_all_users,

        ----------  dates
        window_start as window_start_date,
        window_end as window_end_date,

        ----------  dlt metadata
        _dlt_load_id,
        to_timestamp(cast(_dlt_load_id as {{ close_type_double() }})) as loaded_at

    from source

)

select * from renamed
