{%- set non_additive = var('close_non_additive_metric_keys', ['leads.contacted.all.count']) -%}
{%- set documented = close_documented_metrics() -%}

with

activity_metrics as (

    select * from {{ ref('stg_close__activity_metrics') }}

),

final as (

    select
        org_id,
        metric_key,
        metric_name,
        metric_description,
        metric_object,
        metric_action,
        metric_subtype,
        metric_aggregation,
        case
            when metric_aggregation = 'count' then 'count'
            when metric_aggregation like '%duration' then 'seconds'
            when metric_aggregation like '%value' then 'cents'
            else 'unknown'
        end as metric_unit,
        (
            metric_aggregation = 'count'
            or substr(metric_aggregation, 1, 4) = 'sum_'
        )
        {%- if non_additive %}
        and metric_key not in ({% for key in non_additive %}'{{ key }}'{% if not loop.last %}, {% endif %}{% endfor %})
        {%- endif %} as is_additive,
        column_name,
        data_type,
        coalesce(
            case metric_key
                {%- for metric in documented %}
                when '{{ metric.key }}' then '{{ metric.name }}'
                {%- endfor %}
            end,
            column_name
        ) as staging_column_name,
        case metric_key
            {%- for metric in documented if not metric.is_average %}
            when '{{ metric.key }}' then '{{ metric.name }}'
            {%- endfor %}
        end as daily_fact_column_name

    from activity_metrics

)

select * from final
