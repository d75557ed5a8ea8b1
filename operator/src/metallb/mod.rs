//! MetalLB, as the operator models it, from 0.12 to 0.16: its configuration in both shapes
//! (`config`: 0.12's ConfigMap; `crs`: the custom resources of 0.13 and later, with what 0.16
//! added), how its controllers hand out and move addresses (`safety` for 0.12's refusals,
//! `renumber` for 0.13's refusal and 0.14+'s renumbering, `sequence` for each write's
//! intermediate state, `capacity`), the cluster facts its rules read (`cluster`, `nodes`,
//! `cloud`, `segments`), and what it says back (`readback`, `announcements`). Pure: no I/O.

pub mod announcements;
pub mod capacity;
pub mod cidr;
pub mod cloud;
pub mod cluster;
pub mod config;
pub mod convert;
pub mod crs;
pub mod duration;
pub mod nodes;
pub mod readback;
pub mod renumber;
pub mod safety;
pub mod segments;
pub mod sequence;
