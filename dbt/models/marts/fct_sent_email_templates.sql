with

sent_emails as (

    select * from {{ ref('stg_close__sent_emails_by_template') }}

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
        percentage_responded as close_percentage_responded

    from sent_emails

)

select * from final
