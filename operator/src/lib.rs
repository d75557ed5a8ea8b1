//! kommander-operator: deploys catalog apps to every attached cluster of a workspace, and rolls
//! MetalLB configuration only when the change cannot break a running Service.
//!
//! The functional core (`values`, `render`, `metallb`) is plain functions over plain data;
//! nothing in it knows about HTTP or the Kubernetes API.

pub mod address_sharing;
pub mod blocker;
pub mod catalog;
pub mod chart;
pub mod checks;
pub mod conditions;
pub mod controller;
pub mod crdgen;
pub mod drift;
pub mod health;
pub mod hooks;
pub mod kube_proxy;
pub mod kubeconfig;
pub mod listing;
pub mod manifest;
pub mod metallb;
pub mod metrics;
pub mod names;
pub mod plan;
pub mod pools;
pub mod remote;
pub mod render;
pub mod requeue;
pub mod resources;
pub mod rollout;
pub mod selector;
pub mod status;
pub mod targets;
pub mod values;
pub mod waves;
pub mod yaml;
