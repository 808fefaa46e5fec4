//! `mountinfo`: arbitrary text through the conformance crate's public
//! `/proc/<pid>/mountinfo` parser (`berth_conformance::report`), which
//! reads the probe's view of the kernel. (berth's own parser in
//! `sdk/src/cgroups/mountinfo.rs` is crate-private: it is reached only
//! through the SDK's unit tests.)
//!
//! Never a panic; on `Ok`, one entry per non-blank line, and `unescape`
//! round-trips plain text; on `Err`, a message.

use berth_conformance::report::{parse_mountinfo, unescape};

/// Checks one input.
pub fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match parse_mountinfo(&text) {
        Ok(entries) => {
            let lines = text.lines().filter(|l| !l.trim().is_empty()).count();
            assert_eq!(entries.len(), lines, "one entry per line");
            for e in &entries {
                assert!(!e.options.iter().any(String::is_empty));
                assert!(!e.super_options.iter().any(String::is_empty));
            }
        }
        Err(e) => assert!(!e.to_string().is_empty(), "empty error: {e:?}"),
    }
    // `unescape` of a string without a backslash is the identity.
    let plain: String = text.chars().filter(|c| *c != '\\').collect();
    assert_eq!(unescape(&plain), plain);
}
