{#
    Lead and opportunity status reports have the same shape; opportunities add
    `_opportunities_page_url(s)` drill-down paths and a pipeline. One macro per model pair
    keeps the two twins identical.
#}

{% macro stg_close_status_overview(object_type) -%}
{%- set counters = ['started', 'ended', 'gained', 'lost', 'entered', 'left'] -%}
with

source as (

    select * from {{ close_source(object_type ~ '_status_overview') }}

),

renamed as (

    select

        ----------  ids
        org_id,
        {{ close_segment(object_type ~ '_status_overview') }} as segment,
        status_id,

        ----------  strings
        grain,
        status_label,
        timezone as report_timezone,
        {% for counter in counters -%}
        _queries_{{ counter }} as {{ counter }}_query,
        _leads_page_urls_{{ counter }} as {{ counter }}_leads_page_url,
        {% if object_type == 'opportunity' -%}
        _opportunities_page_urls_{{ counter }} as {{ counter }}_opportunities_page_url,
        {% endif -%}
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
{%- endmacro %}


{% macro stg_close_status_transitions(object_type) -%}
with

source as (

    select * from {{ close_source(object_type ~ '_status_transitions') }}

),

renamed as (

    select

        ----------  ids
        org_id,
        {{ close_segment(object_type ~ '_status_transitions') }} as segment,
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
        {% if object_type == 'opportunity' -%}
        _opportunities_page_url as opportunities_page_url,
        {% endif %}

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
{%- endmacro %}


{% macro fct_close_status_daily(object_type) -%}
{%- set drill_down = 'ended_leads_page_url' if object_type == 'lead'
    else 'ended_opportunities_page_url' -%}
{{ config(
    materialized='incremental',
    incremental_strategy='close_window_replace',
    unique_key=['org_id', 'segment', 'status_date'],
    on_schema_change='fail',
) }}
{%- set attributes = ['org_id', 'status_id', 'status_label', 'is_status_deleted']
    + (['status_type', 'pipeline_id'] if object_type == 'opportunity' else []) -%}
{%- set dimension_attributes -%}
    (select org_id, status_id, status_label, is_deleted as is_status_deleted
        {%- if object_type == 'opportunity' %}, status_type, pipeline_id{% endif %}
     from {{ ref('dim_' ~ object_type ~ '_statuses') }})
{%- endset -%}
{#- Incremental: the days loads since the last build re-read; every day when a status's label
    (or type, pipeline, deleted flag) changed. #}
{%- set windows_only = close_incremental_windows([(attributes, dimension_attributes, none)]) %}
{%- set watermark = close_watermark() if windows_only else "''" %}
with

{% if windows_only -%}
new_days as (

    select distinct org_id, segment, window_start_date
    from {{ ref('stg_close__' ~ object_type ~ '_status_overview') }}
    where grain = 'day' and _dlt_load_id > {{ watermark }}

),

{% endif -%}
status_overview as (

    select status_overview.*
    from {{ ref('stg_close__' ~ object_type ~ '_status_overview') }} as status_overview
    {%- if windows_only %}
    inner join new_days
        on new_days.org_id = status_overview.org_id
        and new_days.segment = status_overview.segment
        and new_days.window_start_date = status_overview.window_start_date
    {%- endif %}

),

dim_statuses as (

    select * from {{ ref('dim_' ~ object_type ~ '_statuses') }}

),

daily as (

    select * from status_overview where grain = 'day'

),

final as (

    select
        daily.org_id,
        daily.segment,
        daily.status_id,
        daily.window_start_date as status_date,
        daily.window_end_date,
        dim_statuses.status_label,
        {% if object_type == 'opportunity' -%}
        dim_statuses.status_type,
        dim_statuses.pipeline_id,
        {% endif -%}
        dim_statuses.is_deleted as is_status_deleted,
        daily.count_started,
        daily.count_ended,
        daily.count_change,
        daily.change_percent,
        daily.count_gained,
        daily.count_lost,
        daily.count_entered,
        daily.count_left,
        daily.{{ drill_down }},
        daily._dlt_load_id

    from daily
    left join dim_statuses
        on daily.org_id = dim_statuses.org_id
        and daily.status_id = dim_statuses.status_id

)

select * from final
{%- endmacro %}


{#- Both daily status facts as one relation (object_type, org_id, segment, status_id,
    status_date, count_started, count_ended), for tests that check them the same way. -#}
{% macro close_status_daily_union() -%}
    {%- for object_type in ['lead', 'opportunity'] %}
    select
        '{{ object_type }}' as object_type,
        org_id,
        segment,
        status_id,
        status_date,
        count_started,
        count_ended
    from {{ ref('fct_' ~ object_type ~ '_status_daily') }}
    {% if not loop.last %}union all{% endif %}
    {%- endfor %}
{%- endmacro %}
