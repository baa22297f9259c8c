//! LFV's edge agent contract (`proto/edge-agent.proto`), compiled by `build.rs`.
#![allow(clippy::all, missing_docs)]

tonic::include_proto!("aws.lookout_vision");
