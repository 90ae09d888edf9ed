{{ stg_close_status_transitions('opportunity') }}
