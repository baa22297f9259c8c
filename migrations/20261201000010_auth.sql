-- Who may use Vigil: console users, their sessions, and the API access keys issued to them (SigV4).

create table app_user (
    id text primary key,            -- random hex id
    name text not null unique,      -- sign-in name: letters, digits, '.', '_', '-', '@'
    password_hash text not null,    -- Argon2id, PHC string format ($argon2id$v=19$...)
    is_admin integer not null,      -- 1: may manage users and every access key; 0: only their own keys
    created_at bigint not null,
    updated_at bigint not null
);

-- A signed-in browser. The cookie holds a random token; only its SHA-256 is stored here.
create table session (
    id text primary key,            -- sha256 (hex) of the cookie token
    user_id text not null references app_user (id) on delete cascade,
    expires_at bigint not null,     -- ms since the epoch; the session is refused from then on
    created_at bigint not null,
    updated_at bigint not null
);

create index session_by_user on session (user_id);

-- API access keys. SigV4 verification needs the secret itself, so it is stored encrypted with the server key
-- (VIGIL_SECRET_KEY or DATA_DIR/secret.key), never in plain text.
create table access_key (
    id text primary key,            -- the access key id clients send (VKIA + 16 characters)
    user_id text not null references app_user (id) on delete cascade,
    secret text not null,           -- 'sealed:v1:' + base64(nonce, ChaCha20-Poly1305 ciphertext, tag)
    description text not null,      -- what the key is for, as its owner wrote it
    last_used_at bigint,            -- last verified request (updated at most once a minute), null if never
    created_at bigint not null,
    updated_at bigint not null
);

create index access_key_user on access_key (user_id);
