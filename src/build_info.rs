//! What this binary was built from (recorded by `build.rs`), for `dbsync_exporter_build_info`.

/// The git revision this binary was built from (`unknown` outside a checkout).
pub const REVISION: &str = env!("DBSYNC_EXPORTER_REVISION");
/// The rustc version that built it.
pub const RUSTC_VERSION: &str = env!("DBSYNC_EXPORTER_RUSTC");
