with

source as (

    select * from {{ close_source('users') }}

),

renamed as (

    select

        ----------  ids
        org_id,
        id as user_id,

        ----------  strings
        email,
        first_name,
        last_name,
        nullif(trim(concat(coalesce(first_name, ''), ' ', coalesce(last_name, ''))), '') as full_name,
        image as image_url,

        ----------  booleans
        is_active,

        ----------  timestamps
        date_created as created_at,
        date_updated as updated_at,

        ----------  dlt metadata
        _dlt_load_id,
        to_timestamp(cast(_dlt_load_id as {{ close_type_double() }})) as loaded_at

    from source

)

select * from renamed
