with

source as (

    select * from {{ close_source('pipelines') }}

),

renamed as (

    select

        ----------  ids
        org_id,
        id as pipeline_id,
        organization_id,

        ----------  strings
        name as pipeline_name,

        ----------  timestamps
        date_created as created_at,
        date_updated as updated_at,

        ----------  dlt metadata
        _dlt_load_id,
        to_timestamp(cast(_dlt_load_id as {{ close_type_double() }})) as loaded_at

    from source

)

select * from renamed
