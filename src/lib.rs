//! vrift: a content-addressed, snapshot-able overlay for project directories.
//!
//! The library behind the `vrift` binary: the store ([`cas`]), the manifest
//! ([`manifest`]), the view ([`view`]) and the operations on them.

pub mod applets;
pub mod cas;
pub mod cli;
pub mod daemon;
pub mod env_vars;
pub mod exclusive;
pub mod failpoint;
pub mod fsck;
pub mod fuse_view;
pub mod gc;
pub mod inception;
pub mod ingest;
pub mod init;
pub mod inspect;
pub mod lock;
pub mod manifest;
pub mod materialize;
pub mod paths;
pub mod profile;
pub mod project;
#[cfg(feature = "remote")]
pub mod remote;
pub mod shadow;
pub mod syscall_view;
pub mod table;
pub mod trust;
pub mod ui;
pub mod view;
pub mod wrappers;
