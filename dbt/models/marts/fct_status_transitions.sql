with

lead_status_transitions as (

    select * from {{ ref('stg_close__lead_status_transitions') }}

),

opportunity_status_transitions as (

    select * from {{ ref('stg_close__opportunity_status_transitions') }}

),

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
        {{ page_url }} as page_url
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
        page_url

    from transitions

)

select * from final
