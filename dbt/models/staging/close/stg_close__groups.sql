with

source as (

    select * from {{ close_source('groups') }}

),

renamed as (

    select

        ----------  ids
        org_id,
        id as group_id,
        organization_id,

        ----------  strings
        name as group_name,

        ----------  dlt metadata
        _dlt_load_id,
        to_timestamp(cast(_dlt_load_id as {{ close_type_double() }})) as loaded_at

    from source

)

select * from renamed
