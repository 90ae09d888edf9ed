{{ stg_close_status_overview('lead') }}
