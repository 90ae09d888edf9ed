{#
    The activity metrics this project names (the 50 keys of Close's documented
    /report/activity/metrics/ example, plus the two `*_with_reply` keys seen in live use).

    Each entry: `key` (Close's metric key), `column` (the raw column dlt gives it: dots become
    underscores), `name` (the column in fct_user_activity_daily; null for averages, which are
    recomputed there from sum / count instead of zero-filled), `data_type` (bigint for `.count`
    and `.sum_*`, a 64-bit float (close_type_double()) for `.avg_*`).

    A live org can list more metrics: staging passes unknown metric columns through and
    fct_activity_metrics_daily unpivots every metric listed in activity_metrics, named or not.
#}
{% macro close_documented_metrics() %}
    {%- set pairs = [
        ('calls.all.all.count', 'calls_count'),
        ('calls.all.all.sum_duration', 'calls_duration_seconds'),
        ('calls.all.all.avg_duration', none),
        ('calls.inbound.all.count', 'inbound_calls_count'),
        ('calls.inbound.all.sum_duration', 'inbound_calls_duration_seconds'),
        ('calls.inbound.all.avg_duration', none),
        ('calls.outbound.all.count', 'outbound_calls_count'),
        ('calls.outbound.all.sum_duration', 'outbound_calls_duration_seconds'),
        ('calls.outbound.all.avg_duration', none),
        ('calls.outbound.regular.count', 'outbound_regular_calls_count'),
        ('calls.outbound.regular.sum_duration', 'outbound_regular_calls_duration_seconds'),
        ('calls.outbound.regular.avg_duration', none),
        ('calls.outbound.external.count', 'outbound_external_calls_count'),
        ('calls.outbound.external.sum_duration', 'outbound_external_calls_duration_seconds'),
        ('calls.outbound.external.avg_duration', none),
        ('calls.outbound.power_dialer.count', 'power_dialer_calls_count'),
        ('calls.outbound.power_dialer.sum_duration', 'power_dialer_calls_duration_seconds'),
        ('calls.outbound.power_dialer.avg_duration', none),
        ('calls.outbound.predictive_dialer.count', 'predictive_dialer_calls_count'),
        ('calls.outbound.predictive_dialer.sum_duration', 'predictive_dialer_calls_duration_seconds'),
        ('calls.outbound.predictive_dialer.avg_duration', none),
        ('emails.sent.all.count', 'emails_sent_count'),
        ('emails.sent.sequences.count', 'sequence_emails_sent_count'),
        ('emails.sent.sequences_with_reply.count', 'sequence_emails_sent_with_reply_count'),
        ('emails.sent.sequences_without_reply.count', 'sequence_emails_sent_without_reply_count'),
        ('emails.sent.manual_with_reply.count', 'manual_emails_sent_with_reply_count'),
        ('emails.sent.bulk_with_reply.count', 'bulk_emails_sent_with_reply_count'),
        ('emails.received.all.count', 'emails_received_count'),
        ('emails.opened.all.count', 'emails_opened_count'),
        ('emails.opened.sequences.count', 'sequence_emails_opened_count'),
        ('sms.sent.all.count', 'sms_sent_count'),
        ('sms.received.all.count', 'sms_received_count'),
        ('leads.created.all.count', 'leads_created_count'),
        ('leads.contacted.all.count', 'leads_contacted_count'),
        ('opportunities.created.all.count', 'opportunities_created_count'),
        ('opportunities.created_for.all.count', 'opportunities_created_for_count'),
        ('opportunities.won.all.count', 'opportunities_won_count'),
        ('opportunities.won.all.sum_annualized_value', 'opportunities_won_annualized_value_cents'),
        ('opportunities.lost.all.count', 'opportunities_lost_count'),
        ('opportunities.lost.all.sum_annualized_value', 'opportunities_lost_annualized_value_cents'),
        ('opportunities.value_won.one_time.count', 'opportunities_won_one_time_count'),
        ('opportunities.value_won.one_time.sum_value', 'opportunities_won_one_time_value_cents'),
        ('opportunities.value_won.monthly.count', 'opportunities_won_monthly_count'),
        ('opportunities.value_won.monthly.sum_value', 'opportunities_won_monthly_value_cents'),
        ('opportunities.value_won.annual.count', 'opportunities_won_annual_count'),
        ('opportunities.value_won.annual.sum_value', 'opportunities_won_annual_value_cents'),
        ('opportunities.value_lost.one_time.count', 'opportunities_lost_one_time_count'),
        ('opportunities.value_lost.one_time.sum_value', 'opportunities_lost_one_time_value_cents'),
        ('opportunities.value_lost.monthly.count', 'opportunities_lost_monthly_count'),
        ('opportunities.value_lost.monthly.sum_value', 'opportunities_lost_monthly_value_cents'),
        ('opportunities.value_lost.annual.count', 'opportunities_lost_annual_count'),
        ('opportunities.value_lost.annual.sum_value', 'opportunities_lost_annual_value_cents'),
    ] -%}
    {%- set metrics = [] -%}
    {%- for key, name in pairs -%}
        {%- set aggregation = key.split('.')[-1] -%}
        {%- do metrics.append({
            'key': key,
            'column': key.replace('.', '_'),
            'name': name,
            'data_type': 'bigint' if (aggregation == 'count' or aggregation.startswith('sum_')) else close_type_double(),
        }) -%}
    {%- endfor -%}
    {{ return(metrics) }}
{% endmacro %}

{#
    The call-duration averages fct_user_activity_daily recomputes from its zero-filled sums and
    counts: (output column, duration column, count column).
#}
{% macro close_call_duration_averages() %}
    {{ return([
        ('calls_average_duration_seconds', 'calls_duration_seconds', 'calls_count'),
        ('inbound_calls_average_duration_seconds', 'inbound_calls_duration_seconds', 'inbound_calls_count'),
        ('outbound_calls_average_duration_seconds', 'outbound_calls_duration_seconds', 'outbound_calls_count'),
        ('outbound_regular_calls_average_duration_seconds', 'outbound_regular_calls_duration_seconds', 'outbound_regular_calls_count'),
        ('outbound_external_calls_average_duration_seconds', 'outbound_external_calls_duration_seconds', 'outbound_external_calls_count'),
        ('power_dialer_calls_average_duration_seconds', 'power_dialer_calls_duration_seconds', 'power_dialer_calls_count'),
        ('predictive_dialer_calls_average_duration_seconds', 'predictive_dialer_calls_duration_seconds', 'predictive_dialer_calls_count'),
    ]) }}
{% endmacro %}

{#
    Metric columns of a raw/staging activity relation, found by introspection: every column
    that is not one of the report's own columns or dlt's bookkeeping. Empty while parsing and
    when the relation does not exist yet.

    `known_columns`: the non-metric columns of that relation (lower case).
#}
{% macro close_metric_columns(relation, known_columns) %}
    {%- set found = [] -%}
    {%- if execute and relation is not none -%}
        {%- set existing = load_relation(relation) -%}
        {%- if existing is not none -%}
            {%- for column in adapter.get_columns_in_relation(existing) -%}
                {%- set name = column.name | lower -%}
                {%- if name not in known_columns and not name.startswith('_dlt') -%}
                    {%- do found.append(name) -%}
                {%- endif -%}
            {%- endfor -%}
        {%- endif -%}
    {%- endif -%}
    {{ return(found) }}
{% endmacro %}

{#
    Long-form value of the metric in `metrics.column_name`, read from whichever of `columns`
    (metric columns of `relation_cte`) it names, as a float. Used by fct_activity_metrics_daily
    with a join to the metrics dimension: one output row per input row and metric.
#}
{% macro close_unpivot_metric_columns(relation_cte, columns) -%}
    {%- if columns | length > 0 -%}
        case metrics.column_name
            {%- for column in columns %}
            when '{{ column }}' then cast({{ relation_cte }}.{{ column }} as {{ close_type_double() }})
            {%- endfor %}
        end
    {%- else -%}
        cast(null as {{ close_type_double() }})
    {%- endif -%}
{%- endmacro %}

{# Keeps only the metrics whose column exists in the relation (`1 = 0` when none does). #}
{% macro close_metric_column_filter(columns) -%}
    {%- if columns | length > 0 -%}
        metrics.column_name in ({% for column in columns %}'{{ column }}'{% if not loop.last %}, {% endif %}{% endfor %})
    {%- else -%}
        1 = 0
    {%- endif -%}
{%- endmacro %}



{#
    The metric columns of a staging model over `activity_overview` or `activity_by_user`:
    every documented metric typed by its key's suffix (null where the raw table lacks it),
    then any further metric column a live org has, passed through.
#}
{% macro close_select_metric_columns(table, known_columns) -%}
{%- set documented = close_documented_metrics() -%}
{%- set present = close_metric_columns(source('close', table), known_columns) -%}
{%- set documented_columns = documented | map(attribute='column') | list -%}
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
{%- endmacro %}
