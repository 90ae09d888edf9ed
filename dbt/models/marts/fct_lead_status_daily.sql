{{ fct_close_status_daily('lead') }}
