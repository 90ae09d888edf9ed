{#- Metric columns: the documented ones always exist here (null where the raw table lacks them),
    typed by their key's suffix; any further metric column a live org has is passed through. -#}
{%- set known_columns = ['org_id', 'window_start', 'window_end', 'timezone', 'date', 'datetime'] -%}
{%- set documented = close_documented_metrics() -%}
{%- set present = close_metric_columns(source('close', 'activity_overview'), known_columns) -%}
{%- set documented_columns = documented | map(attribute='column') | list -%}

with

source as (

    select * from {{ close_source('activity_overview') }}

),

renamed as (

    select

        ----------  ids
        org_id,

        ----------  strings
        timezone as report_timezone,
        {{ adapter.quote('datetime') }} as bucket_datetime,

        ----------  numerics: one column per activity metric (raw metric column names)
        {% for metric in documented -%}
        {%- if metric.column in present or not execute -%}
        cast({{ metric.column }} as {{ metric.data_type }}) as {{ metric.column }},
        {%- else -%}
        cast(null as {{ metric.data_type }}) as {{ metric.column }},
        {%- endif %}
        {% endfor -%}
        {% for column in present if column not in documented_columns -%}
        {{ column }},
        {% endfor %}

        ----------  dates
        {{ adapter.quote('date') }} as activity_date,
        window_start as window_start_date,
        window_end as window_end_date,

        ----------  dlt metadata
        _dlt_load_id,
        to_timestamp(cast(_dlt_load_id as {{ close_type_double() }})) as loaded_at

    from source

)

select * from renamed
