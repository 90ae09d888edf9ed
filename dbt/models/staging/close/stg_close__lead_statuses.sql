with

source as (

    select * from {{ close_source('lead_statuses') }}

),

renamed as (

    select

        ----------  ids
        org_id,
        id as status_id,
        organization_id,

        ----------  strings
        label as status_label,

        ----------  dlt metadata
        _dlt_load_id,
        to_timestamp(cast(_dlt_load_id as {{ close_type_double() }})) as loaded_at

    from source

)

select * from renamed
