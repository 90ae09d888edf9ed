with

source as (

    select * from {{ close_source('opportunity_status_transitions') }}

),

renamed as (

    select

        ----------  ids
        org_id,
        from_status_key,
        from_status_id,
        to_status_id,

        ----------  strings
        grain,
        kind,
        from_status_label,
        to_status_label,
        timezone as report_timezone,
        _query as search_query,
        _leads_page_url as leads_page_url,
        _opportunities_page_url as opportunities_page_url,

        ----------  numerics
        {{ adapter.quote('count') }} as transition_count,

        ----------  booleans
        from_status_is_deleted as is_from_status_deleted,
        to_status_is_deleted as is_to_status_deleted,
        coalesce(from_status_key = '_created', false) as is_created_in_window,

        ----------  dates
        window_start as window_start_date,
        window_end as window_end_date,

        ----------  dlt metadata
        _dlt_load_id,
        to_timestamp(cast(_dlt_load_id as {{ close_type_double() }})) as loaded_at

    from source

)

select * from renamed
