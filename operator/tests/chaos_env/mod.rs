//! The chaos suite's parts: the port-closing proxy, the workload and its record, MetalLB in
//! the workload, and the judge of the Events.

pub mod metallb;
pub mod proxy;
pub mod truth;
pub mod workload;
