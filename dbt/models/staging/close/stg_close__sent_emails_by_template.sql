with

source as (

    select * from {{ close_source('sent_emails_by_template') }}

),

renamed as (

    select

        ----------  ids
        org_id,
        {{ close_segment('sent_emails_by_template') }} as segment,
        template_key,
        template_id,

        ----------  strings
        name as template_name,
        template_url,
        timezone as report_timezone,
        _queries_total as sent_query,
        _queries_opened as opened_query,
        _queries_responded as responded_query,

        ----------  numerics
        total as sent_count,
        opened as opened_count,
        responded as responded_count,
        percentage_opened,
        percentage_responded,

        ----------  booleans
        is_shared,
        coalesce(template_key = '_all', false) as is_all_emails,

        ----------  dates
        window_start as window_start_date,
        window_end as window_end_date,

        ----------  dlt metadata
        _dlt_load_id,
        to_timestamp(cast(_dlt_load_id as {{ close_type_double() }})) as loaded_at

    from source

)

select * from renamed
