-- Who may do what: policies on access keys, roles of console users, and the audit log.

-- The key's policy: an IAM-shaped JSON document (`Statement` with `Effect`, `Action`, `Resource`; auth::policy).
-- Null for keys made before policies existed: they keep every right their owner's role gives, as before.
alter table access_key add column policy text;

-- The console role: 'administrator' (users, keys, the audit log, and everything on projects), 'editor'
-- (everything on projects) or 'viewer' (reads only). A user's keys never do more than the role allows.
-- is_admin stays and is kept equal to (role = 'administrator').
alter table app_user add column role text;
update app_user set role = case when is_admin <> 0 then 'administrator' else 'editor' end;

-- Every change made through the API or the console, and every call refused by a policy or a role. Never holds
-- a secret: names, ids, action names, resources and outcomes only.
create table audit_event (
    id text primary key,                 -- random hex
    at bigint not null,                  -- when the call was answered, ms since the epoch
    principal_kind text not null,        -- 'user' (console session) or 'key' (signed API call)
    principal text not null,             -- the user's name, or the access key id
    via text not null,                   -- 'api' or 'console'
    action text not null,                -- lookoutvision:StopModel, vigil:CreateTrial, console:create_project, ...
    resource text not null,              -- an ARN, a project name for console calls, or '' when none applies
    outcome text not null,               -- 'allowed' (answered 2xx/3xx), 'failed' (allowed, answered with an error), 'denied'
    status integer not null,             -- the HTTP status answered
    created_at bigint not null,
    updated_at bigint not null
);

create index audit_event_at on audit_event (at);
