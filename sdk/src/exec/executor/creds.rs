//! Credentials: user and group ids (`setresuid`, `setresgid`,
//! `setgroups`) and capabilities (the bounding set's `PR_CAPBSET_DROP`,
//! `PR_SET_KEEPCAPS`, `capset`, the ambient set's `PR_CAP_AMBIENT`).

use super::super::sys::{self, SysResult};

/// `Step::BecomeRoot`: root of the new user namespace.
pub(super) fn become_root() -> SysResult<()> {
    sys::setresgid(0, 0, 0)?;
    sys::setresuid(0, 0, 0)
}

/// The capabilities from 0 to `last_cap` that are not in `keep`: those
/// `Step::DropBoundingCaps` drops.
fn not_kept(keep: u64, last_cap: u32) -> impl Iterator<Item = u32> {
    (0..=last_cap).filter(move |&cap| keep & (1 << cap) == 0)
}

/// The capabilities in `set`, lowest first.
fn members(set: u64) -> impl Iterator<Item = usize> {
    (0..64).filter(move |&cap| set & (1 << cap) != 0)
}

/// `Step::DropBoundingCaps`.
pub(super) fn drop_bounding(keep: u64, last_cap: u32) -> SysResult<()> {
    for cap in not_kept(keep, last_cap) {
        sys::prctl(libc::PR_CAPBSET_DROP, cap as usize, 0, 0, 0)?;
    }
    Ok(())
}

/// `Step::KeepCaps`.
pub(super) fn keep_caps() -> SysResult<()> {
    sys::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0).map(drop)
}

/// The two 32-bit words of each set that `capset` (version 3) takes.
pub(super) fn cap_data(effective: u64, permitted: u64, inheritable: u64) -> [sys::CapData; 2] {
    let half = |shift: u32| sys::CapData {
        effective: (effective >> shift) as u32,
        permitted: (permitted >> shift) as u32,
        inheritable: (inheritable >> shift) as u32,
    };
    [half(0), half(32)]
}

/// `Step::AmbientCaps`: clears the ambient set, then raises each of
/// `ambient`.
pub(super) fn ambient(ambient: u64) -> SysResult<()> {
    let clear = libc::PR_CAP_AMBIENT_CLEAR_ALL as usize;
    match sys::prctl(libc::PR_CAP_AMBIENT, clear, 0, 0, 0) {
        // Kernels before 4.3 have no ambient set; fine when empty.
        Err(libc::EINVAL) if ambient == 0 => return Ok(()),
        r => r?,
    };
    for cap in members(ambient) {
        let raise = libc::PR_CAP_AMBIENT_RAISE as usize;
        sys::prctl(libc::PR_CAP_AMBIENT, raise, cap, 0, 0)?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    const CAP_CHOWN: u32 = 0;
    const CAP_NET_BIND_SERVICE: u32 = 10;
    const CAP_SYS_ADMIN: u32 = 21;
    const CAP_CHECKPOINT_RESTORE: u32 = 40;

    #[test]
    fn the_bounding_set_drops_what_is_not_kept_up_to_the_last_cap() {
        let keep = 1 << CAP_CHOWN | 1 << CAP_NET_BIND_SERVICE;
        let dropped: Vec<_> = not_kept(keep, CAP_CHECKPOINT_RESTORE).collect();
        assert_eq!(dropped.len(), 39);
        assert!(!dropped.contains(&CAP_CHOWN));
        assert!(!dropped.contains(&CAP_NET_BIND_SERVICE));
        assert!(dropped.contains(&CAP_SYS_ADMIN));
        // The last cap is included, nothing past it.
        assert_eq!(dropped.last(), Some(&CAP_CHECKPOINT_RESTORE));
        // Everything kept: nothing dropped; nothing kept: 0..=last.
        assert_eq!(not_kept(u64::MAX, 63).count(), 0);
        assert_eq!(
            not_kept(0, 63).collect::<Vec<_>>(),
            (0..=63).collect::<Vec<_>>()
        );
        assert_eq!(not_kept(0, 0).collect::<Vec<_>>(), [0]);
    }

    #[test]
    fn ambient_members_are_listed_lowest_first() {
        assert_eq!(members(0).count(), 0);
        assert_eq!(
            members(1 << CAP_NET_BIND_SERVICE | 1 << CAP_CHOWN | 1 << 63).collect::<Vec<_>>(),
            [0, 10, 63]
        );
        assert_eq!(members(u64::MAX).count(), 64);
    }

    #[test]
    fn capability_sets_split_into_two_words() {
        let [lo, hi] = cap_data(
            1 << CAP_SYS_ADMIN | 1 << CAP_CHECKPOINT_RESTORE,
            u64::MAX,
            1 << 32,
        );
        assert_eq!(lo.effective, 1 << CAP_SYS_ADMIN);
        assert_eq!(hi.effective, 1 << (CAP_CHECKPOINT_RESTORE - 32));
        assert_eq!((lo.permitted, hi.permitted), (u32::MAX, u32::MAX));
        assert_eq!((lo.inheritable, hi.inheritable), (0, 1));
    }
}
