//! The whole conformance suite against provider-nomad and the fake Nomad (raw_exec tasks run as
//! real processes), in-process through the provider kit's conformance hook.

use clap::Parser;
use provider_nomad::{NomadArgs, NomadProvider, fake::FakeNomad};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    nomad: NomadArgs,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_nomad_passes_every_conformance_check() {
    let fake = FakeNomad::start(&[]).expect("the fake Nomad builds and starts");
    let cli = Cli::try_parse_from([
        "provider-nomad",
        "--nomad-addr",
        &fake.addr,
        "--driver",
        "raw_exec",
        "--restart-delay",
        "1s",
    ])
    .expect("flags parse");
    let settings = cli.nomad.settings().expect("settings are valid");
    let provider = NomadProvider::new(settings).expect("provider starts");
    let report = vk_provider_kit::test_util::conformance(provider, &[])
        .await
        .expect("provider served on a temporary socket");
    let failed: Vec<String> = report
        .results
        .iter()
        .filter(|r| r.outcome == vk_conformance::Outcome::Fail)
        .map(|r| r.line())
        .collect();
    assert!(failed.is_empty(), "failed checks:\n{}", failed.join("\n"));
    assert!(
        report.passed() >= 25,
        "only {} checks passed",
        report.passed()
    );
}
