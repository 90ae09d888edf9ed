with

source as (

    select * from {{ close_source('custom_reports') }}

),

renamed as (

    select

        ----------  ids
        org_id,
        {{ close_segment('custom_reports') }} as segment,
        report_name,
        series as series_key,

        ----------  strings
        series_label,
        x as x_value,
        x_field,
        y_field,
        {{ adapter.quote('interval') }} as x_interval,
        transform_y as y_transform,
        group_by as group_by_field,
        timezone as report_timezone,
        raw as raw_response,

        ----------  numerics
        y as y_value,

        ----------  dates
        window_start as window_start_date,
        window_end as window_end_date,

        ----------  dlt metadata
        _dlt_load_id,
        to_timestamp(cast(_dlt_load_id as {{ close_type_double() }})) as loaded_at

    from source

)

select * from renamed
