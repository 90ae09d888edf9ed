{#- Pipeline health, one row per run (a dlt load): requests, retries, 429s, rows, reports ok /
    failed / skipped, the windows read and how long it took, summed over the run ledger's rows
    (report × org × segment). Empty until the loader writes close_raw.run_ledger. -#}
with

run_reports as (

    select * from {{ ref('rpt_pipeline_run_reports') }}

),

{#- Sums of integers cast back to bigint (HUGEINT on DuckDB, numeric on Postgres). #}
runs as (

    select
        run_id,
        min(run_started_at) as run_started_at,
        min(started_at) as started_at,
        max(finished_at) as finished_at,
        count(distinct org_id) as org_count,
        count(distinct segment) as segment_count,
        count(distinct report_name) as report_count,
        count(*) as reports_read,
        cast(sum(case when is_ok then 1 else 0 end) as bigint) as reports_ok,
        cast(sum(case when is_failed then 1 else 0 end) as bigint) as reports_failed,
        cast(sum(case when is_skipped then 1 else 0 end) as bigint) as reports_skipped,
        cast(sum(window_count) as bigint) as window_count,
        min(first_window_date) as first_window_date,
        max(last_window_date) as last_window_date,
        cast(sum(request_count) as bigint) as request_count,
        cast(sum(retry_count) as bigint) as retry_count,
        cast(sum(rate_limited_count) as bigint) as rate_limited_count,
        cast(sum(row_count) as bigint) as row_count
    from run_reports
    group by 1

),

failed_reports as (

    select run_id, string_agg(report_name, ', ' order by report_name) as failed_reports
    from (select distinct run_id, report_name from run_reports where is_failed) as failed
    group by 1

),

final as (

    select
        runs.run_id,
        runs.run_started_at,
        runs.started_at,
        finished_at,
        cast({{ dbt.datediff('started_at', 'finished_at', 'millisecond') }} as {{ close_type_double() }}) / 1000
            as duration_seconds,
        case
            when reports_failed = 0 then 'ok'
            when reports_ok = 0 then 'failed'
            else 'partial'
        end as run_status,
        org_count,
        segment_count,
        report_count,
        reports_read,
        reports_ok,
        reports_failed,
        reports_skipped,
        failed_reports.failed_reports,
        window_count,
        first_window_date,
        last_window_date,
        request_count,
        retry_count,
        rate_limited_count,
        {{ safe_divide('rate_limited_count', 'request_count') }} as rate_limited_share,
        row_count

    from runs
    left join failed_reports
        on runs.run_id = failed_reports.run_id

)

select * from final
