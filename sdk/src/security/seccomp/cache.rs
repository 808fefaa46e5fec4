//! The last few compiled filters, by profile: an embedder that starts many
//! containers with one profile (every Docker-like default) compiles it once.
//! A compile of the default profile takes about 0.3 ms, a lookup compares
//! profiles field by field.

use std::sync::{Arc, Mutex};

use oci_spec::runtime::LinuxSeccomp;

use super::Filter;
use crate::error::Result;

/// How many distinct profiles are kept.
const ENTRIES: usize = 8;

/// Most recently used first.
static CACHE: Mutex<Vec<(LinuxSeccomp, Arc<Filter>)>> = Mutex::new(Vec::new());

/// The filter of `spec`: a copy of the cached one, or `compile(spec)`,
/// kept when it succeeds. Errors are not cached (they are cheap to find
/// again and carry the caller's field names).
pub(super) fn get_or_compile(
    spec: &LinuxSeccomp,
    compile: impl FnOnce(&LinuxSeccomp) -> Result<Filter>,
) -> Result<Filter> {
    if let Some(hit) = lookup(spec) {
        return Ok(hit);
    }
    let filter = compile(spec)?;
    let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    if !cache.iter().any(|(s, _)| s == spec) {
        cache.insert(0, (spec.clone(), Arc::new(filter.clone())));
        cache.truncate(ENTRIES);
    }
    Ok(filter)
}

fn lookup(spec: &LinuxSeccomp) -> Option<Filter> {
    let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    let i = cache.iter().position(|(s, _)| s == spec)?;
    let entry = cache.remove(i);
    let filter = Filter::clone(&entry.1);
    cache.insert(0, entry);
    Some(filter)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxSeccompAction;

    #[test]
    fn a_profile_is_compiled_once_and_errors_are_not_kept() {
        let mut spec = LinuxSeccomp::default();
        // A profile no other test uses (the cache is process-wide).
        spec.set_default_errno_ret(Some(4042));
        spec.set_default_action(LinuxSeccompAction::ScmpActErrno);
        let mut calls = 0;
        let mut count = |s: &LinuxSeccomp| {
            calls += 1;
            super::super::compile_uncached(s)
        };
        let a = get_or_compile(&spec, &mut count).unwrap();
        let b = get_or_compile(&spec, &mut count).unwrap();
        assert_eq!(a, b);
        assert_eq!(calls, 1);
        let bad = |_: &LinuxSeccomp| Err(crate::Error::Unsupported("test".into()));
        let mut other = spec.clone();
        other.set_default_errno_ret(Some(4043));
        assert!(get_or_compile(&other, bad).is_err());
        assert!(get_or_compile(&other, bad).is_err());
    }
}
