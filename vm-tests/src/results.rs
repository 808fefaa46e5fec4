//! What a guest reports, and the verdict on its cell.
//!
//! The guest's init writes marker lines to its results port (see
//! [`crate::guest`]); between a suite's [`SUITE_START`] and [`SUITE_END`] come
//! the test binary's libtest JSON events (`--format json`) and anything else it
//! printed. QEMU exits 0 whether the guest powered off or panicked, so the
//! verdict comes from the markers alone: a cell passed only if the guest
//! reached [`END`] and every suite ended with status 0 and no failed test.

use std::fmt;

use serde_json::Value;

/// The guest's init started (`release=... mode=... cpus=...`).
pub const BEGIN: &str = "BERTH-VM-BEGIN";
/// A cgroup controller is available (mounted as a v1 hierarchy, or enabled in
/// the v2 root's `cgroup.subtree_control`).
pub const CGROUP: &str = "BERTH-VM-CGROUP";
/// A v1 controller listed in `/proc/cgroups` could not be mounted.
pub const FAILED_CONTROLLER: &str = "BERTH-VM-CGROUP-FAILED";
/// The cell cannot run berth's tests (the rest of the line says why); the
/// guest runs nothing and goes on to [`END`].
pub const NOT_APPLICABLE: &str = "BERTH-VM-NOT-APPLICABLE";
/// A test binary starts (its name follows).
pub const SUITE_START: &str = "BERTH-VM-SUITE-START";
/// A test binary ended (its name and exit status follow).
pub const SUITE_END: &str = "BERTH-VM-SUITE-END";
/// The init ran to its end and is about to power off.
pub const END: &str = "BERTH-VM-END";

/// One failed test and what it printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestFailure {
    /// The test's name.
    pub name: String,
    /// Its captured output (the panic message included).
    pub output: String,
}

/// The outcome of one test binary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SuiteResult {
    /// The suite's name.
    pub name: String,
    /// The binary's exit status; `None` if the guest never reported its end.
    pub exit: Option<i32>,
    /// Names of the tests that passed.
    pub passed: Vec<String>,
    /// The tests that failed.
    pub failed: Vec<TestFailure>,
    /// Names of the ignored tests.
    pub ignored: Vec<String>,
    /// Tests that started and never finished (the guest died or timed out in them).
    pub unfinished: Vec<String>,
    /// Lines that were not libtest events (stray output, a crash message).
    pub other_output: Vec<String>,
}

impl SuiteResult {
    /// Whether the suite ran to its end with status 0 and no failed test.
    pub fn ok(&self) -> bool {
        self.exit == Some(0) && self.failed.is_empty() && self.unfinished.is_empty()
    }

    fn event(&mut self, event: &Value) {
        let name = || event["name"].as_str().unwrap_or_default().to_string();
        if event["type"] != "test" {
            return;
        }
        match event["event"].as_str() {
            Some("started") => self.unfinished.push(name()),
            // libtest's "has been running for over 60 seconds" notice.
            Some("timeout") => {}
            Some(done) => {
                let n = name();
                self.unfinished.retain(|u| *u != n);
                match done {
                    "ok" => self.passed.push(n),
                    "ignored" => self.ignored.push(n),
                    "failed" => self.failed.push(TestFailure {
                        output: event["stdout"].as_str().unwrap_or_default().to_string(),
                        name: n,
                    }),
                    _ => {}
                }
            }
            None => {}
        }
    }
}

/// Everything one guest reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CellResult {
    /// The `BEGIN` line's fields (`release=6.1.0-57-amd64 mode=v2 cpus=2`), if seen.
    pub begin: Option<String>,
    /// Whether the `END` marker came.
    pub ended: bool,
    /// Why the cell is not applicable, if the guest said so.
    pub not_applicable: Option<String>,
    /// The controllers the guest had.
    pub controllers: Vec<String>,
    /// The v1 controllers `/proc/cgroups` listed but that could not be mounted.
    pub failed_controllers: Vec<String>,
    /// The suites, in the order they ran.
    pub suites: Vec<SuiteResult>,
}

/// The verdict on a cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every suite ran to its end and passed.
    Passed,
    /// Something failed; the reasons, one per line.
    Failed(Vec<String>),
    /// The guest cannot run berth's tests in this mode (why).
    NotApplicable(String),
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Passed => f.write_str("passed"),
            Verdict::Failed(_) => f.write_str("FAILED"),
            Verdict::NotApplicable(_) => f.write_str("not applicable"),
        }
    }
}

impl CellResult {
    /// Parses the text of a guest's results port.
    pub fn parse(text: &str) -> CellResult {
        let mut r = CellResult::default();
        let mut current: Option<SuiteResult> = None;
        for line in text.lines().map(|l| l.trim_end_matches('\r')) {
            let (marker, rest) = line.split_once(' ').unwrap_or((line, ""));
            match marker {
                BEGIN => r.begin = Some(rest.to_string()),
                CGROUP => r.controllers.push(rest.to_string()),
                FAILED_CONTROLLER => r.failed_controllers.push(rest.to_string()),
                NOT_APPLICABLE => r.not_applicable = Some(rest.to_string()),
                SUITE_START => {
                    r.suites.extend(current.take());
                    current = Some(SuiteResult {
                        name: rest.to_string(),
                        ..SuiteResult::default()
                    });
                }
                SUITE_END => {
                    let (name, status) = rest.rsplit_once(' ').unwrap_or((rest, ""));
                    let mut suite = current.take().unwrap_or_else(|| SuiteResult {
                        name: name.to_string(),
                        ..SuiteResult::default()
                    });
                    suite.exit = Some(status.parse().unwrap_or(-1));
                    r.suites.push(suite);
                }
                END => r.ended = true,
                _ => {
                    let Some(suite) = current.as_mut() else {
                        continue;
                    };
                    match serde_json::from_str::<Value>(line) {
                        Ok(event) if event.is_object() => suite.event(&event),
                        _ if line.trim().is_empty() => {}
                        _ => suite.other_output.push(line.to_string()),
                    }
                }
            }
        }
        r.suites.extend(current);
        r
    }

    /// Passed, failed (with the reasons) or not applicable.
    pub fn verdict(&self) -> Verdict {
        let mut reasons = Vec::new();
        if self.begin.is_none() {
            reasons.push("the guest's init never started".to_string());
        }
        for s in &self.suites {
            for t in &s.failed {
                reasons.push(format!("{}: test {} failed", s.name, t.name));
            }
            for t in &s.unfinished {
                reasons.push(format!("{}: test {} never finished", s.name, t));
            }
            match s.exit {
                None => reasons.push(format!("{}: the binary never finished", s.name)),
                Some(0) => {}
                Some(code) if s.failed.is_empty() => {
                    reasons.push(format!("{}: exited with status {code}", s.name))
                }
                Some(_) => {}
            }
        }
        if !self.ended {
            reasons.push(
                "no end marker: the guest panicked, hung or was killed at the timeout".to_string(),
            );
        }
        if !reasons.is_empty() {
            return Verdict::Failed(reasons);
        }
        match &self.not_applicable {
            Some(why) => Verdict::NotApplicable(why.clone()),
            None => Verdict::Passed,
        }
    }

    /// Tests passed, failed and ignored, over all suites.
    pub fn counts(&self) -> (usize, usize, usize) {
        self.suites.iter().fold((0, 0, 0), |(p, f, i), s| {
            (p + s.passed.len(), f + s.failed.len(), i + s.ignored.len())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSING: &str = "\
BERTH-VM-BEGIN release=6.1.0-57-amd64 mode=v2 cpus=2\r
BERTH-VM-CGROUP memory\r
BERTH-VM-CGROUP pids\r
BERTH-VM-SUITE-START sdk/lifecycle\r
{ \"type\": \"suite\", \"event\": \"started\", \"test_count\": 2 }\r
{ \"type\": \"test\", \"event\": \"started\", \"name\": \"a\" }\r
{ \"type\": \"test\", \"name\": \"a\", \"event\": \"ok\" }\r
{ \"type\": \"test\", \"event\": \"started\", \"name\": \"b\" }\r
{ \"type\": \"test\", \"event\": \"timeout\", \"name\": \"b\" }\r
{ \"type\": \"test\", \"name\": \"b\", \"event\": \"ignored\" }\r
{ \"type\": \"suite\", \"event\": \"ok\", \"passed\": 1, \"failed\": 0, \"ignored\": 1 }\r
BERTH-VM-SUITE-END sdk/lifecycle 0\r
BERTH-VM-END\r
";

    #[test]
    fn a_clean_run_passes_with_its_counts() {
        let r = CellResult::parse(PASSING);
        assert_eq!(r.verdict(), Verdict::Passed);
        assert_eq!(r.counts(), (1, 0, 1));
        assert_eq!(r.controllers, ["memory", "pids"]);
        assert_eq!(
            r.begin.as_deref(),
            Some("release=6.1.0-57-amd64 mode=v2 cpus=2")
        );
    }

    #[test]
    fn a_failed_test_fails_the_cell_and_keeps_its_output() {
        let text = PASSING.replace(
            "\"name\": \"a\", \"event\": \"ok\" }",
            "\"name\": \"a\", \"event\": \"failed\", \"stdout\": \"thread 'a' panicked at x.rs:1\\nboom\\n\" }",
        ).replace("sdk/lifecycle 0", "sdk/lifecycle 101");
        let r = CellResult::parse(&text);
        let Verdict::Failed(reasons) = r.verdict() else {
            panic!("{:?}", r.verdict());
        };
        assert_eq!(reasons, ["sdk/lifecycle: test a failed"]);
        assert_eq!(
            r.suites[0].failed[0].output,
            "thread 'a' panicked at x.rs:1\nboom\n"
        );
        assert_eq!(r.counts(), (0, 1, 1));
    }

    #[test]
    fn a_missing_end_marker_fails_the_cell_and_names_the_running_test() {
        let cut = PASSING
            .find("{ \"type\": \"test\", \"name\": \"a\"")
            .unwrap();
        let r = CellResult::parse(&PASSING[..cut]);
        let Verdict::Failed(reasons) = r.verdict() else {
            panic!("{:?}", r.verdict());
        };
        assert!(reasons.contains(&"sdk/lifecycle: test a never finished".to_string()));
        assert!(reasons.contains(&"sdk/lifecycle: the binary never finished".to_string()));
        assert!(reasons.iter().any(|r| r.starts_with("no end marker")));
        let empty = CellResult::parse("");
        assert!(matches!(empty.verdict(), Verdict::Failed(r) if r.len() == 2));
    }

    #[test]
    fn a_crashed_binary_fails_with_its_output() {
        let text = "BERTH-VM-BEGIN x\nBERTH-VM-SUITE-START s\nSegmentation fault\nBERTH-VM-SUITE-END s 139\nBERTH-VM-END\n";
        let r = CellResult::parse(text);
        assert_eq!(
            r.verdict(),
            Verdict::Failed(vec!["s: exited with status 139".into()])
        );
        assert_eq!(r.suites[0].other_output, ["Segmentation fault"]);
    }

    #[test]
    fn not_applicable_only_when_the_guest_got_to_the_end() {
        let text = "BERTH-VM-BEGIN x\nBERTH-VM-CGROUP-FAILED memory\nBERTH-VM-NOT-APPLICABLE no cgroup v1 hierarchy for: memory\nBERTH-VM-END\n";
        let r = CellResult::parse(text);
        assert_eq!(
            r.verdict(),
            Verdict::NotApplicable("no cgroup v1 hierarchy for: memory".into())
        );
        assert_eq!(r.failed_controllers, ["memory"]);
        let cut = text.replace("BERTH-VM-END\n", "");
        assert!(matches!(
            CellResult::parse(&cut).verdict(),
            Verdict::Failed(_)
        ));
    }
}
