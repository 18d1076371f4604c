-- The handoff to the token service (issue "the 60-second handoff"). Run after schema.sql; idempotent.
--   psql -v ON_ERROR_STOP=1 -f sql/schema.sql -f sql/handoff.sql
--
-- Cafe24's authorization code expires one minute after it is issued and cannot be reused (Cafe24 Admin API
-- documentation, "Get Authentication Code"). The token service must learn of a new code at once, not poll, and
-- exactly one worker may exchange it.

-- Claimed rows are marked, not deleted, so an audit can see them. The callback's insert does not name this column.
alter table cafe24.oauth_authorization_codes add column if not exists claimed_at timestamptz;

-- Wake-up: every new row is announced on the channel `cafe24_oauth_code` with its id as the payload.
-- A trigger rather than a NOTIFY in the callback's statement: it fires only when a row is really inserted (a
-- repeat inserts nothing, so it notifies nothing), it is delivered only when the insert commits, and it holds for
-- every writer of the table. The callback's statement, and its single round trip, stay unchanged.
create or replace function cafe24.notify_oauth_authorization_code() returns trigger
language plpgsql as $$
begin
    perform pg_notify('cafe24_oauth_code', new.id::text);
    return null;
end
$$;

create or replace trigger oauth_authorization_codes_notify
    after insert on cafe24.oauth_authorization_codes
    for each row execute function cafe24.notify_oauth_authorization_code();

-- Claim exactly once: marks one stored, unexpired, unclaimed code as claimed and returns it. Two workers claiming
-- at once: the second waits for the first's row lock, then re-checks `claimed_at is null` on the new row version
-- (READ COMMITTED), finds it claimed and gets no row. `lifetime` is the code's usable life from `created_at`
-- (60 s, Cafe24's one minute; the code was issued a little before we stored it, so this is an upper bound).
create or replace function cafe24.claim_oauth_authorization_code(
    claim_id bigint,
    lifetime interval default interval '60 seconds'
) returns table (id bigint, code text, state text, created_at timestamptz)
language sql volatile as $$
    update cafe24.oauth_authorization_codes as c
       set claimed_at = now()
     where c.id = claim_id
       and c.claimed_at is null
       and c.created_at > now() - lifetime
    returning c.id, c.code, c.state, c.created_at
$$;

-- The same, for a worker that knows the state it issued (the state is unique).
create or replace function cafe24.claim_oauth_authorization_code_by_state(
    claim_state text,
    lifetime interval default interval '60 seconds'
) returns table (id bigint, code text, state text, created_at timestamptz)
language sql volatile as $$
    update cafe24.oauth_authorization_codes as c
       set claimed_at = now()
     where c.state = claim_state
       and c.claimed_at is null
       and c.created_at > now() - lifetime
    returning c.id, c.code, c.state, c.created_at
$$;

-- Purge: deletes rows older than `retention` (claimed or not; a code is worthless after a minute) and returns how
-- many. Run it on a schedule, e.g. daily. A stored row is also what refuses a replay of its callback URL (the same
-- code and state again is a repeat, not a new row), so it must outlive the state that came with it: the function
-- accepts a state for an hour at most (STATE_MAX_AGE_SECONDS, 10 minutes by default). A retention under a day is
-- therefore raised to a day.
create or replace function cafe24.purge_oauth_authorization_codes(
    retention interval default interval '7 days'
) returns bigint
language sql volatile as $$
    with purged as (
        delete from cafe24.oauth_authorization_codes
         where created_at < now() - greatest(retention, interval '1 day')
        returning 1
    )
    select count(*) from purged
$$;

-- What the token service's database user needs (run as the table's owner, with your role's name):
--   grant usage on schema cafe24 to token_service;
--   grant select, update (claimed_at) on cafe24.oauth_authorization_codes to token_service;
--   grant execute on function cafe24.claim_oauth_authorization_code(bigint, interval),
--                             cafe24.claim_oauth_authorization_code_by_state(text, interval) to token_service;
-- and for the purge job: grant delete on cafe24.oauth_authorization_codes, execute on its function.
