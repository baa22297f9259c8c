-- Projects and idempotency tokens. Times are milliseconds since the Unix epoch (bigint), so the same
-- schema and queries run on SQLite and PostgreSQL.

create table project (
    id text primary key,            -- random hex id; rows elsewhere refer to it, never to the name
    name text not null unique,      -- LFV ProjectName: 1-255 chars, [a-zA-Z0-9][a-zA-Z0-9_-]*
    created_at bigint not null,
    updated_at bigint not null
);

create index project_created on project (created_at, id);

-- One row per (operation, X-Amzn-Client-Token) that succeeded. A retry with the same token and the same
-- parameters gets the stored answer; the same token with other parameters is refused. Tokens last 8 hours.
create table client_token (
    operation text not null,        -- LFV operation name, e.g. CreateProject
    token text not null,            -- the client's token, 1-64 chars [a-zA-Z0-9-]
    params_hash text not null,      -- sha256 (hex) of the operation's canonical parameters
    response text not null,         -- the JSON body first returned
    created_at bigint not null,
    updated_at bigint not null,
    primary key (operation, token)
);

create index client_token_created on client_token (created_at);
