//! The edge: a model version packaged for a machine on the line ([`package`]), and the agent that runs it
//! there without a database or a web server ([`agent`]), speaking LFV's edge agent gRPC contract on a Unix
//! socket ([`serve`]), reading LFV's RGB888 bitmaps inline or from shared memory ([`bitmap`]), with its
//! installed components in a folder ([`store`]), watching folders on the line ([`watch`]) and publishing their
//! results through a spool ([`spool`]); [`cli`] runs the `vigil edge` commands.

pub mod agent;
pub mod authority;
pub mod bitmap;
pub mod cli;
pub mod package;
pub mod proto;
pub mod serve;
pub mod spool;
pub mod store;
pub mod watch;
