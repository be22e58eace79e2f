//! The whole conformance suite against the mock, in-process, through the provider kit's
//! conformance hook (the same hook every provider crate on the kit uses in its tests).

use provider_mock::{MockConfig, MockProvider};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mock_passes_every_conformance_check() {
    let provider = MockProvider::new(MockConfig::default()).expect("mock starts");
    let report = vk_provider_kit::test_util::conformance(provider, &[])
        .await
        .expect("provider served on a temporary socket");
    let failed: Vec<String> = report
        .results
        .iter()
        .filter(|r| r.outcome != vk_conformance::Outcome::Pass)
        .map(|r| r.line())
        .collect();
    assert!(failed.is_empty(), "failed checks:\n{}", failed.join("\n"));
    assert!(
        report.passed() >= 34,
        "only {} checks passed",
        report.passed()
    );
}
