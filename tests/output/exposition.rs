//! The whole `/metrics` body, exactly, in both formats: a renamed family, a changed HELP text
//! or a new ordering fails here first. The expected bodies are in `expected/`; each value in
//! them follows from the hand-built store in `fixtures.rs` (a 12 s old tip at mainnet slot
//! 204 603 297, epoch 671, 21.9 % in; two rollbacks; a Koios instance whose caches are fresh).

use dbsync_exporter::clock::Clock;
use dbsync_exporter::metrics::Format;

use crate::fixtures::{empty_store, exposition, record_healthy, NOW};

fn render(format: Format) -> String {
    let store = empty_store(Clock::pinned(NOW));
    record_healthy(&store);
    let body = exposition(&store).render(format).unwrap();
    // What the binary was built from is not the store's: it stands as placeholders.
    String::from_utf8(body.to_vec())
        .unwrap()
        .replace(
            &format!("revision=\"{}\"", dbsync_exporter::REVISION),
            "revision=\"REVISION\"",
        )
        .replace(
            &format!("rustc=\"{}\"", dbsync_exporter::RUSTC_VERSION),
            "rustc=\"RUSTC\"",
        )
}

/// Compares line by line, so a failure names the first line that differs.
fn assert_same(actual: &str, expected: &str) {
    for (number, (actual, expected)) in actual.lines().zip(expected.lines()).enumerate() {
        assert_eq!(actual, expected, "line {}", number + 1);
    }
    assert_eq!(
        actual.lines().count(),
        expected.lines().count(),
        "line count"
    );
    assert_eq!(actual, expected);
}

#[test]
fn the_text_format_body_is_exactly_the_expected_one() {
    assert_same(&render(Format::Text), include_str!("expected/metrics.txt"));
}

#[test]
fn the_openmetrics_body_is_exactly_the_expected_one() {
    assert_same(
        &render(Format::OpenMetrics),
        include_str!("expected/metrics.openmetrics"),
    );
}

#[test]
#[ignore = "writes the expected bodies: run after an intended change and review the diff"]
fn write_expected() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/output/expected");
    std::fs::write(format!("{dir}/metrics.txt"), render(Format::Text)).unwrap();
    std::fs::write(
        format!("{dir}/metrics.openmetrics"),
        render(Format::OpenMetrics),
    )
    .unwrap();
}
