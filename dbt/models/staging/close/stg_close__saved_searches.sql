with

source as (

    select * from {{ close_source('saved_searches') }}

),

renamed as (

    select

        ----------  ids
        org_id,
        id as saved_search_id,
        user_id,
        organization_id,

        ----------  strings
        name as saved_search_name,
        description as saved_search_description,
        {{ adapter.quote('type') }} as search_type,
        query as legacy_query,
        s_query as structured_query,

        ----------  booleans
        is_shared,
        is_user_dependent,

        ----------  timestamps
        date_created as created_at,
        date_updated as updated_at,

        ----------  dlt metadata
        _dlt_load_id,
        to_timestamp(cast(_dlt_load_id as {{ close_type_double() }})) as loaded_at

    from source

)

select * from renamed
