with

source as (

    select * from {{ close_source('activity_metrics') }}

),

renamed as (

    select

        ----------  ids
        org_id,
        {{ adapter.quote('key') }} as metric_key,

        ----------  strings
        name as metric_name,
        description as metric_description,
        column_name,
        data_type,
        split_part({{ adapter.quote('key') }}, '.', 1) as metric_object,
        split_part({{ adapter.quote('key') }}, '.', 2) as metric_action,
        split_part({{ adapter.quote('key') }}, '.', 3) as metric_subtype,
        split_part({{ adapter.quote('key') }}, '.', 4) as metric_aggregation,

        ----------  dlt metadata
        _dlt_load_id,
        to_timestamp(cast(_dlt_load_id as {{ close_type_double() }})) as loaded_at

    from source

)

select * from renamed
