{#
    The activity metrics this project names (the 50 keys of Close's documented
    /report/activity/metrics/ example, plus the two `*_with_reply` keys seen in live use).

    Each entry: `key` (Close's metric key), `name` (its column from staging on: in
    stg_close__activity_* and, for counts and sums, in fct_user_activity_daily; Close's own
    averages are `close_*_average_duration_seconds`, since the daily fact recomputes its own
    from the zero-filled sums and counts), `data_type` (bigint for `.count` and `.sum_*`, a
    64-bit float (close_type_double()) for `.avg_*`), `is_average`.

    The raw column of a key is not derived here: it is what the loader wrote in
    activity_metrics.column_name (close_listed_metric_columns). A live org can list more
    metrics: staging passes their raw columns through, and fct_activity_metrics_daily
    unpivots every metric listed in activity_metrics, named or not.
#}
{% macro close_documented_metrics() %}
    {%- set pairs = [
        ('calls.all.all.count', 'calls_count'),
        ('calls.all.all.sum_duration', 'calls_duration_seconds'),
        ('calls.all.all.avg_duration', 'close_calls_average_duration_seconds'),
        ('calls.inbound.all.count', 'inbound_calls_count'),
        ('calls.inbound.all.sum_duration', 'inbound_calls_duration_seconds'),
        ('calls.inbound.all.avg_duration', 'close_inbound_calls_average_duration_seconds'),
        ('calls.outbound.all.count', 'outbound_calls_count'),
        ('calls.outbound.all.sum_duration', 'outbound_calls_duration_seconds'),
        ('calls.outbound.all.avg_duration', 'close_outbound_calls_average_duration_seconds'),
        ('calls.outbound.regular.count', 'outbound_regular_calls_count'),
        ('calls.outbound.regular.sum_duration', 'outbound_regular_calls_duration_seconds'),
        ('calls.outbound.regular.avg_duration', 'close_outbound_regular_calls_average_duration_seconds'),
        ('calls.outbound.external.count', 'outbound_external_calls_count'),
        ('calls.outbound.external.sum_duration', 'outbound_external_calls_duration_seconds'),
        ('calls.outbound.external.avg_duration', 'close_outbound_external_calls_average_duration_seconds'),
        ('calls.outbound.power_dialer.count', 'power_dialer_calls_count'),
        ('calls.outbound.power_dialer.sum_duration', 'power_dialer_calls_duration_seconds'),
        ('calls.outbound.power_dialer.avg_duration', 'close_power_dialer_calls_average_duration_seconds'),
        ('calls.outbound.predictive_dialer.count', 'predictive_dialer_calls_count'),
        ('calls.outbound.predictive_dialer.sum_duration', 'predictive_dialer_calls_duration_seconds'),
        ('calls.outbound.predictive_dialer.avg_duration', 'close_predictive_dialer_calls_average_duration_seconds'),
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
            'name': name,
            'data_type': 'bigint' if (aggregation == 'count' or aggregation.startswith('sum_')) else close_type_double(),
            'is_average': aggregation.startswith('avg_'),
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
    The report's own (non-metric) columns of a raw activity table, lower case; every other
    column except dlt's bookkeeping is a metric column.
#}
{% macro close_activity_report_columns(table) %}
    {%- set common = ['org_id', 'segment', 'window_start', 'window_end', 'timezone', 'date'] -%}
    {%- if table == 'activity_by_user' -%}
        {{ return(common + ['user_id', 'user_name']) }}
    {%- else -%}
        {{ return(common + ['datetime']) }}
    {%- endif -%}
{% endmacro %}

{#
    The fallback naming rule, used only for a documented key that activity_metrics does not
    list (the table not loaded yet): dlt's snake_case naming of a dotted key.
#}
{% macro close_metric_column_name(metric_key) -%}
    {{ return(metric_key | replace('.', '_')) }}
{%- endmacro %}

{#
    Metric key -> raw column, as the loader named it: activity_metrics.column_name (the one
    place that knows; DESIGN §3). Empty while parsing and before activity_metrics is loaded.
#}
{% macro close_listed_metric_columns() %}
    {%- set listed = {} -%}
    {%- set metrics_source = source('close', 'activity_metrics') -%}
    {%- if execute -%}
        {%- set relation = load_relation(metrics_source) -%}
        {%- if relation is not none -%}
            {%- set result = run_query(
                'select distinct ' ~ adapter.quote('key') ~ ', column_name from ' ~ relation
                ~ ' where column_name is not null order by 1'
            ) -%}
            {%- for row in result.rows -%}
                {%- do listed.update({row[0]: row[1] | lower}) -%}
            {%- endfor -%}
        {%- endif -%}
    {%- endif -%}
    {{ return(listed) }}
{% endmacro %}

{# Lower-case column names of a relation; empty while parsing or when it does not exist. #}
{% macro close_relation_columns(relation) %}
    {%- set found = [] -%}
    {%- if execute and relation is not none -%}
        {%- set existing = load_relation(relation) -%}
        {%- if existing is not none -%}
            {%- for column in adapter.get_columns_in_relation(existing) -%}
                {%- do found.append(column.name | lower) -%}
            {%- endfor -%}
        {%- endif -%}
    {%- endif -%}
    {{ return(found) }}
{% endmacro %}

{#
    The metric columns of the staging view over raw `table` (`activity_overview` or
    `activity_by_user`), in order: every documented metric under its name (typed; null where
    the raw table lacks its column), then every further metric column of the raw table under
    its raw name. Each entry: `key` (null for a column activity_metrics does not list),
    `column` (staging name), `raw` (raw column, null when absent), `data_type` (null: as
    loaded).
#}
{% macro close_staging_metrics(table) %}
    {%- set listed = close_listed_metric_columns() -%}
    {%- set present = close_relation_columns(source('close', table)) -%}
    {%- set report_columns = close_activity_report_columns(table) -%}
    {%- set key_of_raw = {} -%}
    {%- for key, column in listed.items() -%}
        {%- do key_of_raw.update({column: key}) -%}
    {%- endfor -%}
    {%- set metrics = [] -%}
    {%- set taken = [] -%}
    {%- for metric in close_documented_metrics() -%}
        {%- set raw = listed.get(metric.key, close_metric_column_name(metric.key)) -%}
        {%- do taken.append(raw) -%}
        {%- do metrics.append({
            'key': metric.key,
            'column': metric.name,
            'raw': raw if (raw in present or not execute) else none,
            'data_type': metric.data_type,
        }) -%}
    {%- endfor -%}
    {%- for column in present -%}
        {%- if column not in taken and column not in report_columns and not column.startswith('_') -%}
            {%- do metrics.append({
                'key': key_of_raw.get(column),
                'column': column,
                'raw': column,
                'data_type': none,
            }) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(metrics) }}
{% endmacro %}

{# The staging select list of the metric columns (see close_staging_metrics). #}
{% macro close_select_metric_columns(table) -%}
        {% for metric in close_staging_metrics(table) -%}
        {%- if metric.data_type is none -%}
        {{ metric.raw }} as {{ metric.column }},
        {%- elif metric.raw is not none -%}
        cast({{ metric.raw }} as {{ metric.data_type }}) as {{ metric.column }},
        {%- else -%}
        cast(null as {{ metric.data_type }}) as {{ metric.column }},
        {%- endif %}
        {% endfor -%}
{%- endmacro %}

{#
    The metrics the long form unpivots from the staging view over raw `table`: every staging
    metric column with a key, as [{key, column}].
#}
{% macro close_staged_metrics(table) %}
    {%- set staged = [] -%}
    {%- for metric in close_staging_metrics(table) if metric.key is not none -%}
        {%- do staged.append({'key': metric.key, 'column': metric.column}) -%}
    {%- endfor -%}
    {{ return(staged) }}
{% endmacro %}

{#
    Long-form value of the metric `metrics.metric_key`, read from its staging column of
    `relation_cte`, as a float; `staged` ([{key, column}]) from close_staged_metrics. Used by
    fct_activity_metrics_daily with a join to the metrics dimension: one output row per input
    row and metric.
#}
{% macro close_unpivot_metrics(relation_cte, staged) -%}
    {%- if staged | length > 0 -%}
        case metrics.metric_key
            {%- for metric in staged %}
            when '{{ metric.key }}' then cast({{ relation_cte }}.{{ metric.column }} as {{ close_type_double() }})
            {%- endfor %}
        end
    {%- else -%}
        cast(null as {{ close_type_double() }})
    {%- endif -%}
{%- endmacro %}

{# Keeps only the metrics the relation has a column for (`1 = 0` when none). #}
{% macro close_metric_key_filter(staged) -%}
    {%- if staged | length > 0 -%}
        metrics.metric_key in ({% for metric in staged %}'{{ metric.key }}'{% if not loop.last %}, {% endif %}{% endfor %})
    {%- else -%}
        1 = 0
    {%- endif -%}
{%- endmacro %}
