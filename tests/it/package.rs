//! The install kit on this machine: the systemd units pass `systemd-analyze verify` and
//! score as reported in the README, and the Debian package built by
//! `deploy/debian/build-deb` is lintian-clean, installs with `dpkg -i` without starting
//! anything, runs against a throwaway database with the URL where the unit's credential
//! comes from, and leaves nothing behind after `dpkg -r` and purge.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use dbsync_fixture::{Cluster, SchemaVersion};

use crate::common::{chain, eventually, unix_now, value};

const UNITS: [&str; 3] = [
    "dbsync-exporter.service",
    "dbsync-exporter-file-sd.service",
    "dbsync-exporter-file-sd.timer",
];

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e} (./scripts/test installs it)"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dbsync-package-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The units as shipped, with the binary cargo built in place of /usr/bin's.
#[test]
fn the_units_verify_and_score_1_2() {
    let dir = scratch("units");
    for unit in UNITS {
        let shipped = std::fs::read_to_string(repo().join("deploy/systemd").join(unit)).unwrap();
        let local = shipped.replace(
            "/usr/bin/dbsync-exporter",
            env!("CARGO_BIN_EXE_dbsync-exporter"),
        );
        std::fs::write(dir.join(unit), local).unwrap();
    }
    let paths: Vec<String> = UNITS
        .iter()
        .map(|unit| dir.join(unit).display().to_string())
        .collect();
    let mut args = vec!["verify"];
    args.extend(paths.iter().map(String::as_str));
    let verify = run("systemd-analyze", &args);
    assert!(verify.status.success(), "{}", text(&verify.stderr));
    assert_eq!(text(&verify.stderr), "", "verify is silent when clean");
    let security = run(
        "systemd-analyze",
        &["security", "--offline=true", "--no-pager", &paths[0]],
    );
    let report = text(&security.stdout);
    assert!(
        report.contains("Overall exposure level for dbsync-exporter.service: 1.2 OK"),
        "{report}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Purges the package when the test ends, however it ends.
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        let _ = run("dpkg", &["--purge", "dbsync-exporter"]);
    }
}

fn status() -> String {
    let query = run("dpkg-query", &["-W", "-f=${Status}", "dbsync-exporter"]);
    text(&query.stdout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_package_installs_runs_and_purges() {
    if !nix_root() {
        eprintln!("skipped: dpkg -i needs root (CI runs as root)");
        return;
    }
    let out = scratch("deb");
    let build = Command::new(repo().join("deploy/debian/build-deb"))
        .arg(&out)
        .env("BINARY", env!("CARGO_BIN_EXE_dbsync-exporter"))
        .output()
        .unwrap();
    assert!(build.status.success(), "build-deb: {}", text(&build.stderr));
    let deb = text(&build.stdout).trim().to_owned();
    let arch = text(&run("dpkg", &["--print-architecture"]).stdout);
    let expected = out.join(format!("dbsync-exporter_0.1.0-1_{}.deb", arch.trim()));
    assert_eq!(Path::new(&deb), expected);

    let lintian = run("lintian", &["--fail-on", "error,warning", &deb]);
    let tags: Vec<String> = text(&lintian.stdout).lines().map(str::to_owned).collect();
    assert!(
        lintian.status.success(),
        "lintian: {tags:?} {}",
        text(&lintian.stderr)
    );
    assert_eq!(
        tags,
        Vec::<String>::new(),
        "lintian tags (the two overrides are explained in deploy/debian/lintian-overrides)"
    );

    let _purge = Purge;
    let _ = run("dpkg", &["--purge", "dbsync-exporter"]);
    let install = run("dpkg", &["-i", &deb]);
    assert!(
        install.status.success(),
        "dpkg -i: {}{}",
        text(&install.stdout),
        text(&install.stderr)
    );
    assert_eq!(status(), "install ok installed");
    for file in [
        "/usr/bin/dbsync-exporter",
        "/lib/systemd/system/dbsync-exporter.service",
        "/lib/systemd/system/dbsync-exporter-file-sd.timer",
        "/etc/default/dbsync-exporter",
        "/usr/share/doc/dbsync-exporter/README.md",
        "/usr/share/doc/dbsync-exporter/examples/reader-role.sql",
        "/usr/share/man/man1/dbsync-exporter.1.gz",
    ] {
        assert!(Path::new(file).is_file(), "{file} installed");
    }
    let credentials = std::fs::metadata("/etc/dbsync-exporter").unwrap();
    assert_eq!(credentials.permissions().mode() & 0o777, 0o700);
    // Installed, not enabled, not started: it cannot run before the URL file exists.
    assert!(
        !Path::new("/etc/systemd/system/multi-user.target.wants/dbsync-exporter.service").exists()
    );
    let version = run("/usr/bin/dbsync-exporter", &["--version"]);
    assert_eq!(text(&version.stdout), "dbsync-exporter 0.1.0\n");

    // Configured as the README says: the URL file, then verify the installed units.
    let db = Cluster::shared().create_database("package").await;
    let _fixture = chain(&db, SchemaVersion::V13_6, "mainnet", unix_now(), 3).await;
    let url_file = "/etc/dbsync-exporter/database_url";
    std::fs::write(url_file, format!("{}\n", db.reader_url())).unwrap();
    std::fs::set_permissions(url_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let verify = run(
        "systemd-analyze",
        &[
            "verify",
            "/lib/systemd/system/dbsync-exporter.service",
            "/lib/systemd/system/dbsync-exporter-file-sd.service",
            "/lib/systemd/system/dbsync-exporter-file-sd.timer",
        ],
    );
    assert!(verify.status.success(), "{}", text(&verify.stderr));
    assert_eq!(text(&verify.stderr), "");

    // The installed binary, reading the URL from that file (as the unit has it do).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let exporter = Command::new("/usr/bin/dbsync-exporter")
        .env_clear()
        .env("DBSYNC_EXPORTER_DATABASE_URL_FILE", url_file)
        .args(["--web.listen-address", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let metrics = format!("http://127.0.0.1:{port}/metrics");
    let body = eventually(
        Duration::from_secs(30),
        "the installed exporter's tip",
        || async {
            let body = reqwest::get(&metrics).await.ok()?.text().await.ok()?;
            (value(&body, "dbsync_block_height") == Some(1002.0)).then_some(body)
        },
    )
    .await;
    assert_eq!(value(&body, "dbsync_up"), Some(1.0));
    let term = run("kill", &["-TERM", &exporter.id().to_string()]);
    assert!(term.status.success());
    let exited = tokio::task::spawn_blocking(move || exporter.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(exited.status.code(), Some(0));
    assert!(!text(&exited.stderr).contains(dbsync_fixture::TestDatabase::READER_PASSWORD));

    // Removed: the binary goes, the configuration stays; purged: nothing stays.
    let remove = run("dpkg", &["-r", "dbsync-exporter"]);
    assert!(remove.status.success(), "dpkg -r: {}", text(&remove.stderr));
    assert_eq!(status(), "deinstall ok config-files");
    assert!(!Path::new("/usr/bin/dbsync-exporter").exists());
    assert!(Path::new("/etc/default/dbsync-exporter").exists());
    let purge = run("dpkg", &["--purge", "dbsync-exporter"]);
    assert!(
        purge.status.success(),
        "dpkg --purge: {}",
        text(&purge.stderr)
    );
    for gone in [
        "/etc/default/dbsync-exporter",
        "/etc/dbsync-exporter",
        "/lib/systemd/system/dbsync-exporter.service",
        "/usr/share/doc/dbsync-exporter",
    ] {
        assert!(!Path::new(gone).exists(), "{gone} left after purge");
    }
    assert_eq!(status(), "");
    let _ = std::fs::remove_dir_all(&out);
}

/// Whether the tests run as root (`id -u`; no libc call needed).
fn nix_root() -> bool {
    text(&run("id", &["-u"]).stdout).trim() == "0"
}
