//! The peer list: the `--peer` flags plus `--peers-file`, re-read every round so peers can be
//! added without a restart.
//!
//! The file is read defensively, because a half-written or corrupted file must not silently
//! switch fleet protection off: each line stands alone (a line that is not UTF-8 or not a
//! peer URL is skipped, with one warning per distinct problem while it lasts), a read failure
//! keeps the last good list (said once), and at most `--peer.max` peers are polled.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::PathBuf;

use crate::config::{parse_peer_url, PeerConfig};

/// Most of the peers file that is read (a peer per line: thousands of peers).
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// The peers to poll, and what was said about the file.
pub(super) struct PeerList {
    flags: Vec<reqwest::Url>,
    file: Option<PathBuf>,
    max: usize,
    /// The file's peers at its last successful read.
    from_file: Vec<reqwest::Url>,
    /// Problems already logged (cleared when they go away, so a recurrence is logged again).
    problems: BTreeSet<String>,
}

impl PeerList {
    pub fn new(config: &PeerConfig) -> PeerList {
        PeerList {
            flags: config.urls.clone(),
            file: config.file.clone(),
            max: config.max,
            from_file: Vec::new(),
            problems: BTreeSet::new(),
        }
    }

    /// Flag peers plus the file's, deduplicated, at most `--peer.max`.
    pub fn current(&mut self) -> Vec<reqwest::Url> {
        let mut problems = Vec::new();
        if let Some(path) = &self.file {
            match read(path) {
                Ok(bytes) => {
                    let (urls, bad) = parse(&bytes);
                    self.from_file = urls;
                    problems.extend(bad);
                }
                Err(error) => problems.push(format!(
                    "cannot read the peers file ({error}); keeping its last good list of {} peer(s)",
                    self.from_file.len()
                )),
            }
        }
        let mut urls: Vec<reqwest::Url> =
            self.flags.iter().chain(&self.from_file).cloned().collect();
        urls.sort();
        urls.dedup();
        if urls.len() > self.max {
            problems.push(format!(
                "{} peers configured, polling the first {} (--peer.max)",
                urls.len(),
                self.max
            ));
            urls.truncate(self.max);
        }
        self.report(problems);
        urls
    }

    /// Logs the problems that are new since the last round.
    fn report(&mut self, problems: Vec<String>) {
        let now: BTreeSet<String> = problems.into_iter().collect();
        let file = self.file.as_ref().map(|path| path.display().to_string());
        for problem in now.difference(&self.problems) {
            tracing::warn!(file = file.as_deref().unwrap_or(""), %problem, "peer list");
        }
        self.problems = now;
    }
}

fn read(path: &PathBuf) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_FILE_BYTES)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The peers of a peers file, and one problem per bad line.
pub(super) fn parse(bytes: &[u8]) -> (Vec<reqwest::Url>, Vec<String>) {
    let mut urls = Vec::new();
    let mut problems = Vec::new();
    for (index, line) in bytes.split(|byte| *byte == b'\n').enumerate() {
        let number = index + 1;
        let Ok(line) = std::str::from_utf8(line) else {
            problems.push(format!("line {number} is not UTF-8, skipped"));
            continue;
        };
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match parse_peer_url(line) {
            Ok(url) => urls.push(url),
            Err(error) => problems.push(format!("line {number} skipped: {error}")),
        }
    }
    (urls, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_line_stands_alone() {
        let file = b"# fleet\nhttps://a.example:9895\n\xff\xfe broken\nftp://b.example\n\n  http://c.example/  \n";
        let (urls, problems) = parse(file);
        let urls: Vec<&str> = urls.iter().map(reqwest::Url::as_str).collect();
        assert_eq!(urls, ["https://a.example:9895/", "http://c.example/"]);
        assert_eq!(
            problems,
            [
                "line 3 is not UTF-8, skipped",
                "line 4 skipped: `ftp://b.example`: only http and https peers are supported"
            ]
        );
    }

    #[test]
    fn a_read_failure_keeps_the_last_good_list_and_the_cap_holds() {
        let dir = std::env::temp_dir().join(format!("peers-list-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("peers");
        std::fs::write(
            &path,
            "http://a.example\nhttp://b.example\nhttp://c.example\n",
        )
        .unwrap();
        let mut list = PeerList::new(&PeerConfig {
            urls: vec![reqwest::Url::parse("http://z.example").unwrap()],
            file: Some(path.clone()),
            max: 3,
            ..PeerConfig::default()
        });
        let hosts = |urls: Vec<reqwest::Url>| {
            urls.iter()
                .map(|url| url.host_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            hosts(list.current()),
            ["a.example", "b.example", "c.example"]
        );
        assert_eq!(
            list.problems.iter().collect::<Vec<_>>(),
            ["4 peers configured, polling the first 3 (--peer.max)"]
        );
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            hosts(list.current()),
            ["a.example", "b.example", "c.example"]
        );
        assert!(list
            .problems
            .iter()
            .any(|problem| problem.starts_with("cannot read the peers file")
                && problem.ends_with("keeping its last good list of 3 peer(s)")));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
