//! The real MetalLB v0.13.5 controller vs our prediction of its refusals (see `oracle_crs`).

mod oracle_crs;

use kommander_operator::metallb::crs::Release;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_oracle_metallb_v013_agrees_with_the_refusal_prediction() {
    oracle_crs::run(&oracle_crs::Version {
        release: Release::V0_13,
        tag: "v0.13.5",
        bin: "metallb-controller-v0.13",
    })
    .await;
}
