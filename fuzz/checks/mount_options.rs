//! `mount_options`: runc's default spec with random option lists on its
//! mounts (and on one extra mount of a random type): the option parser of
//! the plan compiler must never panic, and the result keeps the invariants
//! of `common::check_result`.
//!
//! Input: each option is a known option or raw bytes; lists are split at
//! the choices, so that the fuzzer can both recombine known options and
//! invent new ones.

use serde_json::Value;

use super::common::{compile_json, default_spec_json, Choices, FSTYPES, MOUNT_OPTIONS, WORDS};

/// Checks one input.
pub fn check(data: &[u8]) {
    let mut c = Choices::new(data);
    let mut spec = default_spec_json();
    let Some(Value::Array(mounts)) = spec.get_mut("mounts") else {
        return;
    };
    if c.flag() {
        let mut m = serde_json::Map::new();
        m.insert("destination".into(), c.path(WORDS).into());
        m.insert("type".into(), c.word(FSTYPES).into());
        m.insert("source".into(), c.path(WORDS).into());
        mounts.push(Value::Object(m));
    }
    let n = mounts.len();
    if n == 0 {
        return;
    }
    while !c.is_empty() {
        let m = &mut mounts[c.below(n + 1).min(n - 1)];
        let options: Vec<Value> = (0..=c.below(6))
            .map(|_| c.word(MOUNT_OPTIONS).into())
            .collect();
        if let Value::Object(m) = m {
            if c.below(4) == 0 {
                let Some(Value::Array(old)) = m.get_mut("options") else {
                    m.insert("options".into(), options.into());
                    continue;
                };
                old.extend(options);
            } else {
                m.insert("options".into(), options.into());
            }
        }
    }
    compile_json(spec);
}
