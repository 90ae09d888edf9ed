{{ config(
    materialized='incremental',
    incremental_strategy='close_window_replace',
    unique_key=['org_id', 'segment', 'object_type', 'grain', 'window_start_date'],
    on_schema_change='fail',
) }}
{#- Incremental: the windows (days and months) loads since the last build re-read. Labels come
    from the report rows themselves, not from a dimension. #}
{%- set windows_only = close_incremental_windows() %}
{%- set watermark = close_watermark() if windows_only else "''" %}
with
{% for object_type in ['lead', 'opportunity'] %}
{{ object_type }}_status_transitions as (

    select transitions.*
    from {{ ref('stg_close__' ~ object_type ~ '_status_transitions') }} as transitions
    {%- if windows_only %}
    inner join (
        select distinct org_id, segment, grain, window_start_date
        from {{ ref('stg_close__' ~ object_type ~ '_status_transitions') }}
        where _dlt_load_id > {{ watermark }}
    ) as new_windows
        on new_windows.org_id = transitions.org_id
        and new_windows.segment = transitions.segment
        and new_windows.grain = transitions.grain
        and new_windows.window_start_date = transitions.window_start_date
    {%- endif %}

),
{% endfor %}
transitions as (
    {% for object_type, page_url in [
        ('lead', 'leads_page_url'), ('opportunity', 'opportunities_page_url')
    ] %}
    select
        cast('{{ object_type }}' as {{ dbt.type_string() }}) as object_type,
        org_id,
        segment,
        grain,
        window_start_date,
        window_end_date,
        kind,
        from_status_key,
        to_status_id,
        from_status_id,
        from_status_label,
        is_from_status_deleted,
        to_status_label,
        is_to_status_deleted,
        is_created_in_window,
        transition_count,
        {{ page_url }} as page_url,
        _dlt_load_id
    from {{ object_type }}_status_transitions
    {% if not loop.last %}union all{% endif %}
    {% endfor %}
),

final as (

    select
        object_type,
        org_id,
        segment,
        grain,
        window_start_date,
        window_end_date,
        kind,
        from_status_key,
        to_status_id,
        from_status_id,
        from_status_label,
        is_from_status_deleted,
        to_status_label,
        is_to_status_deleted,
        is_created_in_window,
        coalesce(from_status_id = to_status_id, false) as is_same_status,
        transition_count,
        page_url,
        _dlt_load_id

    from transitions

)

select * from final
