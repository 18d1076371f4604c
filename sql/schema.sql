-- The table the callback writes (docs/decisions.md, D2): the specification's opening statement names it
-- cafe24.oauth_authorization_codes; its example DDL's four columns are kept as they are.
-- Idempotent: running this file again changes nothing. PostgreSQL 17.
--   psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -f sql/schema.sql

create schema if not exists cafe24;

create table if not exists cafe24.oauth_authorization_codes (
    id         bigserial   primary key,
    code       text        not null,
    state      text        not null,
    created_at timestamptz not null default now()
);

-- A code belongs to one flow and a state starts one flow. The database, not the function, enforces it:
-- a repeat of the same pair finds its row, a pair that shares only one of the two is a conflict (409).
create unique index if not exists oauth_authorization_codes_code_key
    on cafe24.oauth_authorization_codes (code);
create unique index if not exists oauth_authorization_codes_state_key
    on cafe24.oauth_authorization_codes (state);

-- What a pair that inserted nothing collided with, without handing out what is stored: the id of each row that
-- holds the code or the state, and whether it holds each of them. Only a caller that already knows a code or a
-- state learns anything, and never another row's values; so the function's role can do its job (a repeat gets the
-- first id, a conflict says which of the two) with no SELECT on the code and state columns (sql/grants.sql).
create or replace function cafe24.find_oauth_authorization_code(
    find_code text,
    find_state text,
    out id bigint,
    out same_code boolean,
    out same_state boolean
) returns setof record
language sql stable security definer set search_path = pg_catalog as $$
    select c.id, c.code = find_code, c.state = find_state
      from cafe24.oauth_authorization_codes as c
     where c.code = find_code or c.state = find_state
$$;
revoke all on function cafe24.find_oauth_authorization_code(text, text) from public;
