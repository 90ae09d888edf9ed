{#- The run ledger as a mart: one row per run, report, org and segment, with how long the
    report took. Empty until the loader writes close_raw.run_ledger. -#}
with

run_ledger as (

    select * from {{ ref('stg_close__run_ledger') }}

),

final as (

    select
        run_id,
        report_name,
        org_id,
        segment,
        run_started_at,
        started_at,
        finished_at,
        cast({{ dbt.datediff('started_at', 'finished_at', 'millisecond') }} as {{ close_type_double() }}) / 1000
            as duration_seconds,
        report_status,
        is_ok,
        is_failed,
        is_skipped,
        error_message,
        window_count,
        first_window_date,
        last_window_date,
        request_count,
        retry_count,
        rate_limited_count,
        {{ safe_divide('rate_limited_count', 'request_count') }} as rate_limited_share,
        row_count

    from run_ledger

)

select * from final
