with

source as (

    select * from {{ close_source('activity_overview') }}

),

renamed as (

    select

        ----------  ids
        org_id,
        {{ close_segment('activity_overview') }} as segment,

        ----------  strings
        timezone as report_timezone,
        {{ adapter.quote('datetime') }} as bucket_datetime,

        ----------  numerics: one column per activity metric, named (see close_documented_metrics)
        {{ close_select_metric_columns('activity_overview') }}

        ----------  dates
        {{ adapter.quote('date') }} as activity_date,
        window_start as window_start_date,
        window_end as window_end_date,

        ----------  dlt metadata
        _dlt_load_id,
        to_timestamp(cast(_dlt_load_id as {{ close_type_double() }})) as loaded_at

    from source

)

select * from renamed
