//! Every integration test in one binary, so libtorch and the server are linked once: the LFV API through the
//! official client, the console's backend, the engine on real images, on SQLite and on PostgreSQL.

mod common;

mod access;
mod api;
mod auth;
mod datasets;
mod drift;
mod edge;
mod engine;
mod engine_decode;
mod engine_model;
mod imports;
mod model_blobs;
mod models;
mod packaging;
mod scale;
mod security;
