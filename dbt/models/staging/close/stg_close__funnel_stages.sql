with

source as (

    select * from {{ close_source('funnel_stages') }}

),

renamed as (

    select

        ----------  ids
        org_id,
        {{ close_segment('funnel_stages') }} as segment,
        pipeline_id,
        user_id,
        status_id,

        ----------  strings
        cohort_type,
        status_label,
        status_type,
        timezone as report_timezone,

        ----------  numerics
        stage_index,
        {{ adapter.quote('count') }} as stage_count,
        count_conversion_rate,
        count_lost as lost_count,
        count_lost_ratio,
        {{ adapter.quote('value') }} as value_cents,
        {{ cents_to_amount(adapter.quote('value')) }} as value_amount,
        value_conversion_rate,
        value_lost as value_lost_cents,
        {{ cents_to_amount('value_lost') }} as value_lost_amount,
        value_lost_ratio,
        weighted_value as weighted_value_cents,
        {{ cents_to_amount('weighted_value') }} as weighted_value_amount,
        weighted_value_conversion_rate,
        average_time_to_advance as average_time_to_advance_seconds,
        {{ seconds_to_minutes('average_time_to_advance') }} as average_time_to_advance_minutes,

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
