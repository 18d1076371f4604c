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

-- What the function's database user needs, and no more (run as the table's owner, with your role's name):
--   grant usage on schema cafe24 to callback_writer;
--   grant select, insert on cafe24.oauth_authorization_codes to callback_writer;
--   grant usage on sequence cafe24.oauth_authorization_codes_id_seq to callback_writer;
