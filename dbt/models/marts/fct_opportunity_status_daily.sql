{{ fct_close_status_daily('opportunity') }}
