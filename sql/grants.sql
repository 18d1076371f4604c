-- The function's database role may do what the callback needs and no more: insert a code and a state, learn the
-- new row's id, and ask cafe24.find_oauth_authorization_code what a pair collided with. It cannot read, change or
-- delete a stored code or state. Run it after schema.sql, as the table's owner, naming the role:
--   psql -v ON_ERROR_STOP=1 -v writer=callback_writer -f sql/grants.sql
-- Idempotent. For RDS IAM authentication, also: grant rds_iam to callback_writer;

grant usage on schema cafe24 to :"writer";
grant insert (code, state), select (id) on cafe24.oauth_authorization_codes to :"writer";
grant usage on sequence cafe24.oauth_authorization_codes_id_seq to :"writer";
grant execute on function cafe24.find_oauth_authorization_code(text, text) to :"writer";

-- The statement's bound on the server. The function also cancels a statement that runs past
-- STATEMENT_TIMEOUT_SECONDS, but RDS Proxy ignores cancel requests; a setting on the role holds everywhere and,
-- unlike SET, pins no proxied session.
alter role :"writer" set statement_timeout = '5s';
