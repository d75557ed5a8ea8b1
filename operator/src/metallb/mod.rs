//! MetalLB 0.12 (ConfigMap-configured) configuration: the model, its parser and every rule the
//! v0.12.1 controller and speaker apply, plus pool capacity.
//!
//! Rules were read from MetalLB v0.12.1 `internal/config` (config.go, validate.go). Where
//! MetalLB stops at the first problem, we report them all. Where it would quietly accept
//! something nonsensical (a range mixing IPv4 and IPv6, a fractional ASN), we refuse it.

pub mod announcements;
pub mod capacity;
pub mod cidr;
pub mod cloud;
pub mod cluster;
mod config;
pub mod convert;
pub mod crs;
pub mod duration;
pub mod nodes;
pub mod readback;
pub mod renumber;
pub mod safety;
pub mod segments;
pub mod sequence;

pub use config::*;
