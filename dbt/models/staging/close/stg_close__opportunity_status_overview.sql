{%- set counters = ['started', 'ended', 'gained', 'lost', 'entered', 'left'] -%}

with

source as (

    select * from {{ close_source('opportunity_status_overview') }}

),

renamed as (

    select

        ----------  ids
        org_id,
        status_id,

        ----------  strings
        grain,
        status_label,
        timezone as report_timezone,
        {% for counter in counters -%}
        _queries_{{ counter }} as {{ counter }}_query,
        _leads_page_urls_{{ counter }} as {{ counter }}_leads_page_url,
        _opportunities_page_urls_{{ counter }} as {{ counter }}_opportunities_page_url,
        {% endfor %}

        ----------  numerics
        started as count_started,
        ended as count_ended,
        {{ adapter.quote('change') }} as count_change,
        change_percent,
        gained as count_gained,
        lost as count_lost,
        entered as count_entered,
        {{ adapter.quote('left') }} as count_left,

        ----------  booleans
        status_is_deleted as is_status_deleted,

        ----------  dates
        window_start as window_start_date,
        window_end as window_end_date,

        ----------  dlt metadata
        _dlt_load_id,
        to_timestamp(cast(_dlt_load_id as {{ close_type_double() }})) as loaded_at

    from source

)

select * from renamed
