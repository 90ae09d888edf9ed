{{ config(
    materialized='incremental',
    incremental_strategy='close_window_replace',
    unique_key=['org_id', 'segment', 'window_start_date'],
    on_schema_change='fail',
) }}
{#- Incremental: the days loads since the last build re-read. #}
{%- set windows_only = close_incremental_windows() %}
{%- set watermark = close_watermark() if windows_only else "''" %}
with

{% if windows_only -%}
new_windows as (

    select distinct org_id, segment, window_start_date
    from {{ ref('stg_close__sent_emails_by_template') }}
    where _dlt_load_id > {{ watermark }}

),

{% endif -%}
sent_emails as (

    select sent_emails.* from {{ ref('stg_close__sent_emails_by_template') }} as sent_emails
    {%- if windows_only %}
    inner join new_windows
        on new_windows.org_id = sent_emails.org_id
        and new_windows.segment = sent_emails.segment
        and new_windows.window_start_date = sent_emails.window_start_date
    {%- endif %}

),

final as (

    select
        org_id,
        segment,
        window_start_date,
        template_key,
        window_end_date,
        template_id,
        template_name,
        template_url,
        is_all_emails,
        is_shared,
        sent_count,
        opened_count,
        responded_count,
        {{ safe_divide('opened_count', 'sent_count') }} as open_rate,
        {{ safe_divide('responded_count', 'sent_count') }} as reply_rate,
        percentage_opened as close_percentage_opened,
        percentage_responded as close_percentage_responded,
        _dlt_load_id

    from sent_emails

)

select * from final
