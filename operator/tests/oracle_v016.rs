//! The real MetalLB v0.16.2 controller vs our renumbering prediction (see `oracle_crs`).

mod oracle_crs;

use kommander_operator::metallb::crs::Release;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_oracle_metallb_v016_agrees_with_the_renumbering_prediction() {
    oracle_crs::run(&oracle_crs::Version {
        release: Release::V0_16,
        tag: "v0.16.2",
        bin: "metallb-controller-v0.16",
    })
    .await;
}
