with

source as (

    select * from {{ close_source('custom_report_fields') }}

),

renamed as (

    select

        ----------  ids
        org_id,
        name as field_name,

        ----------  strings
        label as field_label,
        {{ adapter.quote('type') }} as field_type,
        object_type,

        ----------  dlt metadata
        _dlt_load_id,
        to_timestamp(cast(_dlt_load_id as {{ close_type_double() }})) as loaded_at

    from source

)

select * from renamed
