{#- Users from /user/, plus any user id the reports mention that the list lacks (a removed
    user's past activity still needs a user row for the relationships to hold). -#}
with

users as (

    select * from {{ ref('stg_close__users') }}

),

activity_by_user as (

    select * from {{ ref('stg_close__activity_by_user') }}

),

funnel_totals as (

    select * from {{ ref('stg_close__funnel_totals') }}

),

funnel_stages as (

    select * from {{ ref('stg_close__funnel_stages') }}

),

reported_user_names as (

    select
        org_id,
        user_id,
        user_name,
        row_number() over (
            partition by org_id, user_id
            order by activity_date desc nulls last
        ) as recency_rank
    from activity_by_user

),

reported_users as (

    select org_id, user_id, user_name
    from reported_user_names
    where recency_rank = 1

    union all

    select distinct org_id, user_id, cast(null as {{ dbt.type_string() }}) as user_name
    from funnel_totals
    where not is_all_users

    union all

    select distinct org_id, user_id, cast(null as {{ dbt.type_string() }}) as user_name
    from funnel_stages
    where not is_all_users

),

reported_users_deduplicated as (

    select
        org_id,
        user_id,
        max(user_name) as reported_user_name
    from reported_users
    group by 1, 2

),

all_user_ids as (

    select org_id, user_id from users
    union
    select org_id, user_id from reported_users_deduplicated

),

final as (

    select
        all_user_ids.org_id,
        all_user_ids.user_id,
        coalesce(
            users.full_name,
            reported_users_deduplicated.reported_user_name,
            users.email,
            all_user_ids.user_id
        ) as user_name,
        users.first_name,
        users.last_name,
        users.email,
        users.image_url,
        case
            when users.user_id is null then false
            else users.is_active
        end as is_active,
        users.user_id is not null as is_in_user_list,
        users.created_at,
        users.updated_at

    from all_user_ids
    left join users
        on all_user_ids.org_id = users.org_id
        and all_user_ids.user_id = users.user_id
    left join reported_users_deduplicated
        on all_user_ids.org_id = reported_users_deduplicated.org_id
        and all_user_ids.user_id = reported_users_deduplicated.user_id

)

select * from final
