{#
    Helpers of the local generic tests in tests/generic/ (dbt reads macros only from
    macro-paths).
#}

{#- One row per duplicated key, with how many rows share it. -#}
{% macro default__close_duplicate_keys(model, columns_csv) %}

with validation_errors as (

    select
        {{ columns_csv }},
        count(*) as n_rows
    from {{ model }}
    group by {{ columns_csv }}
    having count(*) > 1

)

select * from validation_errors

{% endmacro %}

{#- DuckDB: group the keys' hashes (one integer per row, not five strings) and look at the
    rows behind a repeated hash only — the same answer (a collision of different keys is
    filtered out by the second grouping), about three times faster on the 8-million-row long
    form of a two-year large org. -#}
{% macro duckdb__close_duplicate_keys(model, columns_csv) %}

with repeated_hashes as (

    select hash({{ columns_csv }}) as key_hash
    from {{ model }}
    group by 1
    having count(*) > 1

),

validation_errors as (

    select
        {{ columns_csv }},
        count(*) as n_rows
    from {{ model }}
    where hash({{ columns_csv }}) in (select key_hash from repeated_hashes)
    group by {{ columns_csv }}
    having count(*) > 1

)

select * from validation_errors

{% endmacro %}
