{#
    Emails sent with templates are a subset of all emails sent: per org, segment and day, the
    sum over templates is at most the "All Emails" row (Close does not document this relation;
    a check of Close's numbers, see dbt_project.yml).
#}
with

sent_email_templates as (

    select * from {{ ref('fct_sent_email_templates') }}

),

templates as (

    select org_id, segment, window_start_date, sum(sent_count) as template_sent_count
    from sent_email_templates
    where not is_all_emails
    group by 1, 2, 3

),

all_emails as (

    select org_id, segment, window_start_date, sent_count as all_sent_count
    from sent_email_templates
    where is_all_emails

)

select
    templates.org_id,
    templates.segment,
    templates.window_start_date,
    templates.template_sent_count,
    all_emails.all_sent_count
from templates
inner join all_emails
    on templates.org_id = all_emails.org_id
    and templates.segment = all_emails.segment
    and templates.window_start_date = all_emails.window_start_date
where templates.template_sent_count > all_emails.all_sent_count
