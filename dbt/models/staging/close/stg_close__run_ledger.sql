with

source as (

    select * from {{ close_source('run_ledger') }}

),

renamed as (

    select

        ----------  ids
        run_id,
        report as report_name,
        org_id,
        segment,

        ----------  strings
        status as report_status,
        error as error_message,

        ----------  numerics
        windows as window_count,
        requests as request_count,
        retries as retry_count,
        rate_limited as rate_limited_count,
        {{ adapter.quote('rows') }} as row_count,

        ----------  booleans
        coalesce(status = 'ok', false) as is_ok,
        coalesce(status = 'failed', false) as is_failed,
        coalesce(status = 'skipped', false) as is_skipped,

        ----------  dates
        first_window as first_window_date,
        last_window as last_window_date,

        ----------  timestamps
        started_at,
        finished_at,
        to_timestamp(cast(run_id as {{ close_type_double() }})) as run_started_at,

        ----------  dlt metadata
        _dlt_load_id,
        to_timestamp(cast(_dlt_load_id as {{ close_type_double() }})) as loaded_at

    from source

)

select * from renamed
