//! The descriptor table: the child's own descriptors moved out of the
//! range the container inherits, the passed ones moved into it, every other
//! one closed (`close_range`, or a `getdents64` listing of `/proc/self/fd`
//! before Linux 5.9), stdio put in place.
//!
//! The computations are pure functions, unit-tested below: the preserved
//! range, which descriptors are kept, the gaps between them that are
//! closed, and the parsing of `linux_dirent64` records.

use libc::c_int;

use super::super::sys::{self, SysResult};
use super::super::ChildArgs;
use super::{Fd, AT_FDCWD};
use crate::plan::Step;

/// The descriptors the child works with: those of [`ChildArgs`], moved
/// above the range the process is to inherit (`3..3+preserve`), so that
/// none of them can reach the container in place of one of the caller's.
pub(super) struct Fds {
    pub(super) sync: c_int,
    pub(super) fifo: c_int,
    /// The exec report socket and the waiter's memfd. Like `fifo`, the
    /// parent already placed them above the range: their numbers are in
    /// `berth-waiter`'s arguments.
    pub(super) exec_report: c_int,
    pub(super) waiter: c_int,
    pub(super) stdio: [c_int; 3],
    /// `args.joins`, in order (at most one per namespace type).
    pub(super) joins: [c_int; MAX_JOINS],
    /// `args.cgroup_tasks` (the parent placed them above the range); -1
    /// once joined.
    pub(super) cgroup_tasks: [c_int; MAX_CGROUP_TASKS],
    /// The first descriptor above the preserved range.
    pub(super) first_free: c_int,
}

/// The most namespaces a plan joins: one per type.
const MAX_JOINS: usize = 8;

/// The most v1 hierarchies a container joins (one per controller, and
/// named ones such as `name=systemd`).
const MAX_CGROUP_TASKS: usize = 16;

/// The most descriptors [`close_foreign_fds`] keeps besides stdio and the
/// preserved ones: sync, fifo, exec report, waiter, three stdio sources,
/// the namespaces to join (at most one per namespace type) and the cgroup
/// `tasks` files.
const MAX_KEPT: usize = 16 + MAX_CGROUP_TASKS;

impl Fds {
    /// `Step::Stdio`: the prepared descriptors onto 0, 1 and 2. An
    /// inherited one (none prepared) stays, made inheritable: the caller
    /// may hold its own stdio close-on-exec, and the container's `execve`
    /// would close it (as `dup3` clears the flag on a prepared one).
    pub(super) fn stdio(&self) -> SysResult<()> {
        for (target, &fd) in (0..).zip(&self.stdio) {
            if fd >= 0 {
                sys::dup3(fd, target, 0)?;
                continue;
            }
            match sys::fcntl(target, libc::F_SETFD, 0) {
                // Not open in the caller: nothing to inherit.
                Ok(_) | Err(libc::EBADF) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// `Step::JoinCgroup`: writes `0` to each v1 `tasks` file and closes it.
    pub(super) fn join_cgroup(&mut self) -> SysResult<()> {
        for fd in self.cgroup_tasks.iter_mut().filter(|fd| **fd >= 0) {
            // `0`: this task, and only it (the process has one).
            sys::write(*fd, b"0")?;
            let _ = sys::close(*fd);
            *fd = -1;
        }
        Ok(())
    }
}

/// How many descriptors the process inherits after stdio (`3..3+n`): the
/// plan's `CloseFds { preserve }`, 0 without one. The parent (which places
/// its own descriptors above the range before the clone) and the child
/// read it alike.
pub(in crate::exec) fn preserved(steps: &[Step]) -> u32 {
    steps
        .iter()
        .find_map(|s| match s {
            Step::CloseFds { preserve } => Some(*preserve),
            _ => None,
        })
        .unwrap_or(0)
}

/// The first descriptor above the preserved range `3..3+preserve`, if it
/// is a descriptor number at all.
fn first_free(preserve: u32) -> Option<c_int> {
    c_int::try_from(preserve.saturating_add(3)).ok()
}

/// Whether the child's own `fd` sits in the preserved range and must move
/// above it (stdio, 0 to 2, is the container's anyway; -1 is none).
fn in_preserved_range(fd: c_int, first_free: c_int) -> bool {
    fd >= 3 && fd < first_free
}

/// Moves `fd` to the lowest free descriptor from `first` on (close-on-exec)
/// if it is below, and closes the original.
pub(super) fn above(fd: c_int, first: c_int) -> SysResult<c_int> {
    if fd >= first {
        return Ok(fd);
    }
    let moved = sys::fcntl(fd, libc::F_DUPFD_CLOEXEC, first as usize)? as c_int;
    let _ = sys::close(fd);
    Ok(moved)
}

/// The descriptors of `args`, those inside the preserved range
/// (`3..3+preserve`) moved above it, then the passed descriptors moved
/// into it. Before anything else: whatever the embedder had at those
/// numbers (copied by the clone) must not reach the container.
pub(super) fn relocate_fds(args: &ChildArgs) -> SysResult<Fds> {
    let first_free = first_free(preserved(&args.plan.steps)).ok_or(libc::EMFILE)?;
    let mut fds = Fds {
        sync: args.sync,
        fifo: args.fifo,
        exec_report: args.exec_report,
        waiter: args.waiter,
        stdio: args.stdio,
        joins: [-1; MAX_JOINS],
        cgroup_tasks: [-1; MAX_CGROUP_TASKS],
        first_free,
    };
    if args.joins.len() > MAX_JOINS || args.cgroup_tasks.len() > MAX_CGROUP_TASKS {
        return Err(libc::E2BIG);
    }
    for (slot, &fd) in fds.joins.iter_mut().zip(args.joins.iter()) {
        *slot = fd;
    }
    for (slot, &fd) in fds.cgroup_tasks.iter_mut().zip(args.cgroup_tasks.iter()) {
        *slot = fd;
    }
    // Copies first, closes after: two entries may name one descriptor.
    let mut old = [-1; 5 + MAX_JOINS];
    let mut old_slots = old.iter_mut();
    let slots = [&mut fds.sync, &mut fds.fifo]
        .into_iter()
        .chain(fds.stdio.iter_mut())
        .chain(fds.joins.iter_mut());
    for fd in slots {
        if in_preserved_range(*fd, first_free) {
            if let Some(o) = old_slots.next() {
                *o = *fd;
            }
            *fd = sys::fcntl(*fd, libc::F_DUPFD_CLOEXEC, first_free as usize)? as c_int;
        }
    }
    for &fd in old.iter().filter(|&&fd| fd >= 0) {
        let _ = sys::close(fd);
    }
    // The passed descriptors into the range, in order. The parent placed
    // their sources above it; `close_foreign_fds` closes those after.
    for (target, &fd) in (3..first_free).zip(args.passed.iter()) {
        sys::dup3(fd, target, 0)?;
    }
    Ok(fds)
}

/// The descriptors of `fds` from `first_free` on, sorted; unused slots
/// hold u32::MAX, which sorts last and closes nothing. (Those below are
/// stdio and the preserved range, kept anyway.)
fn kept_set(fds: &Fds, first_free: u32) -> [u32; MAX_KEPT] {
    let mut kept = [u32::MAX; MAX_KEPT];
    let named = [fds.sync, fds.fifo, fds.exec_report, fds.waiter]
        .into_iter()
        .chain(fds.stdio)
        .chain(fds.joins)
        .chain(fds.cgroup_tasks)
        .filter_map(|fd| u32::try_from(fd).ok())
        .filter(|&fd| fd >= first_free);
    for (slot, fd) in kept.iter_mut().zip(named) {
        *slot = fd;
    }
    kept.sort_unstable();
    kept
}

/// The inclusive ranges from `first` to `u32::MAX` that hold none of
/// `kept` (sorted), in order: what `close_range` closes. The last one
/// ends at `u32::MAX` (none is left when `u32::MAX - 1` is kept).
struct Gaps<'k> {
    lo: u32,
    /// `kept`, then a `u32::MAX` that ends the last gap.
    rest: core::iter::Chain<
        core::iter::Copied<core::slice::Iter<'k, u32>>,
        core::array::IntoIter<u32, 1>,
    >,
}

impl<'k> Gaps<'k> {
    fn new(first: u32, kept: &'k [u32]) -> Gaps<'k> {
        Gaps {
            lo: first,
            rest: kept.iter().copied().chain([u32::MAX]),
        }
    }
}

impl Iterator for Gaps<'_> {
    type Item = (u32, u32);

    fn next(&mut self) -> Option<(u32, u32)> {
        for fd in self.rest.by_ref() {
            let lo = self.lo;
            self.lo = lo.max(fd.saturating_add(1));
            if fd > lo {
                let hi = if fd == u32::MAX {
                    u32::MAX
                } else {
                    fd.saturating_sub(1)
                };
                return Some((lo, hi));
            }
        }
        None
    }
}

/// Closes every descriptor but stdio, the spec's preserved ones (`3..3+n`)
/// and those `args` names. No allocation: the kept set is a sorted array
/// on the stack, and the gaps between its entries are closed with
/// `close_range` (listing `/proc/self/fd` before 5.9).
pub(super) fn close_foreign_fds(fds: &Fds) -> SysResult<()> {
    let first_free = u32::try_from(fds.first_free).map_err(|_| libc::EBADF)?;
    let kept = kept_set(fds, first_free);
    for (lo, hi) in Gaps::new(first_free, &kept) {
        match sys::close_range(lo, hi, 0) {
            Ok(()) => {}
            Err(libc::ENOSYS) | Err(libc::EINVAL) => {
                return close_listed(first_free, &kept);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// [`close_foreign_fds`] before Linux 5.9: closes each descriptor from
/// `first` on, but those in `kept`.
fn close_listed(first: u32, kept: &[u32]) -> SysResult<()> {
    for_each_fd(first, |fd| {
        if !kept.contains(&fd) {
            let _ = sys::close(fd as c_int);
        }
    })
}

/// Calls `f` with each open descriptor from `first` on, as `/proc/self/fd`
/// lists them (without the one reading the list).
fn for_each_fd(first: u32, mut f: impl FnMut(u32)) -> SysResult<()> {
    let dir = Fd(sys::openat(
        AT_FDCWD,
        c"/proc/self/fd",
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        0,
    )?);
    let mut buf = [0u8; 1024];
    loop {
        let n = sys::getdents64(dir.0, &mut buf)?;
        if n == 0 {
            return Ok(());
        }
        for name in Dirents(buf.get(..n).unwrap_or_default()) {
            match parse_fd(name) {
                Some(fd) if fd >= first && fd as c_int != dir.0 => f(fd),
                _ => {}
            }
        }
    }
}

/// The names in a `getdents64` buffer, each with the NUL padding after it.
/// A record is `struct linux_dirent64`: d_ino (8), d_off (8), d_reclen
/// (2), d_type (1), then the NUL-terminated name, `d_reclen` bytes in all.
/// A record cut short ends the walk; a record whose name is missing or
/// runs past the buffer yields an empty name; a zero `d_reclen` is read
/// as 1, so that every record moves the walk on.
struct Dirents<'b>(&'b [u8]);

impl<'b> Iterator for Dirents<'b> {
    type Item = &'b [u8];

    fn next(&mut self) -> Option<&'b [u8]> {
        let &[lo, hi] = self.0.get(16..18)? else {
            return None;
        };
        let reclen = usize::from(u16::from_ne_bytes([lo, hi]));
        let name = self.0.get(19..reclen).unwrap_or_default();
        self.0 = self.0.get(reclen.max(1)..).unwrap_or_default();
        Some(name)
    }
}

/// A descriptor number from a `/proc/self/fd` entry's name (`.` and `..`
/// are none).
fn parse_fd(name: &[u8]) -> Option<u32> {
    let digits = name.split(|&b| b == 0).next()?;
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u32, |n, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        n.checked_mul(10)?
            .checked_add(u32::from(b.wrapping_sub(b'0')))
    })
}

/// `Step::CloseFds`: the preserved range `3..3+preserve` inheritable, every
/// descriptor above it close-on-exec.
pub(super) fn close_fds(preserve: u32) -> SysResult<()> {
    let first = preserve.saturating_add(3);
    for fd in 3..first {
        match sys::fcntl(fd as c_int, libc::F_SETFD, 0) {
            Ok(_) | Err(libc::EBADF) => {}
            Err(e) => return Err(e),
        }
    }
    match sys::close_range(first, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) {
        Ok(()) => return Ok(()),
        Err(libc::EINVAL) | Err(libc::ENOSYS) => {}
        Err(e) => return Err(e),
    }
    // Before Linux 5.11: list our descriptors and mark each.
    for_each_fd(first, |fd| {
        let _ = sys::fcntl(fd as c_int, libc::F_SETFD, libc::FD_CLOEXEC as usize);
    })
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
mod tests {
    use super::*;

    fn fds(first_free: c_int) -> Fds {
        Fds {
            sync: -1,
            fifo: -1,
            exec_report: -1,
            waiter: -1,
            stdio: [-1; 3],
            joins: [-1; MAX_JOINS],
            cgroup_tasks: [-1; MAX_CGROUP_TASKS],
            first_free,
        }
    }

    fn gaps(first: u32, kept: &[u32]) -> Vec<(u32, u32)> {
        Gaps::new(first, kept).collect()
    }

    /// One `linux_dirent64` record with `name` and `reclen` as given.
    fn record(name: &[u8], reclen: u16) -> Vec<u8> {
        let mut r = vec![0u8; 19];
        r[16..18].copy_from_slice(&reclen.to_ne_bytes());
        r[18] = libc::DT_LNK;
        r.extend_from_slice(name);
        r.resize(usize::from(reclen).max(r.len()), 0);
        r
    }

    /// A record as the kernel lays it out: NUL-terminated, 8-aligned.
    fn entry(name: &[u8]) -> Vec<u8> {
        let len = (19 + name.len() + 1).next_multiple_of(8);
        record(name, len as u16)
    }

    fn names(buf: &[u8]) -> Vec<Vec<u8>> {
        Dirents(buf).map(<[u8]>::to_vec).collect()
    }

    #[test]
    fn the_preserved_range_is_the_plans_close_fds_step() {
        assert_eq!(preserved(&[]), 0);
        assert_eq!(preserved(&[Step::Stdio, Step::Exec]), 0);
        assert_eq!(
            preserved(&[Step::Stdio, Step::CloseFds { preserve: 4 }, Step::Exec]),
            4
        );
        // The first one counts (a plan has one).
        assert_eq!(
            preserved(&[
                Step::CloseFds { preserve: 2 },
                Step::CloseFds { preserve: 9 }
            ]),
            2
        );
    }

    #[test]
    fn the_first_free_descriptor_follows_the_preserved_range() {
        assert_eq!(first_free(0), Some(3));
        assert_eq!(first_free(5), Some(8));
        assert_eq!(first_free(i32::MAX as u32 - 3), Some(i32::MAX));
        // Past the last descriptor number: the child refuses (EMFILE).
        assert_eq!(first_free(i32::MAX as u32 - 2), None);
        assert_eq!(first_free(u32::MAX), None);
    }

    #[test]
    fn only_descriptors_inside_the_preserved_range_move() {
        // Nothing preserved: 3.. is free, nothing moves.
        assert!(!in_preserved_range(3, 3));
        // Two preserved: 3 and 4 move, 5 stays, stdio and "none" stay.
        assert!(in_preserved_range(3, 5));
        assert!(in_preserved_range(4, 5));
        assert!(!in_preserved_range(5, 5));
        assert!(!in_preserved_range(2, 5));
        assert!(!in_preserved_range(0, 5));
        assert!(!in_preserved_range(-1, 5));
    }

    #[test]
    fn the_kept_set_is_sorted_and_ignores_the_preserved_range() {
        let mut f = fds(6);
        f.sync = 40;
        f.fifo = 7;
        f.exec_report = 5; // inside the range: the container's, not kept here
        f.waiter = -1;
        f.stdio = [9, 9, 2];
        f.joins[0] = 12;
        f.cgroup_tasks[3] = 6;
        let kept = kept_set(&f, 6);
        assert_eq!(&kept[..6], &[6, 7, 9, 9, 12, 40]);
        assert!(kept[6..].iter().all(|&k| k == u32::MAX));
    }

    #[test]
    fn a_full_kept_set_holds_every_named_descriptor() {
        let mut f = fds(3);
        let mut n = 100;
        let mut next = || {
            n += 1;
            n
        };
        f.sync = next();
        f.fifo = next();
        f.exec_report = next();
        f.waiter = next();
        f.stdio = [next(), next(), next()];
        f.joins = [0; MAX_JOINS].map(|_| next());
        f.cgroup_tasks = [0; MAX_CGROUP_TASKS].map(|_| next());
        let kept = kept_set(&f, 3);
        // 4 + 3 + 8 + 16 = 31 named, in a set of 32.
        assert_eq!(&kept[..31], &(101..=131).collect::<Vec<_>>()[..]);
        assert_eq!(kept[31], u32::MAX);
    }

    #[test]
    fn gaps_close_everything_from_first_when_nothing_is_kept() {
        assert_eq!(gaps(3, &[]), [(3, u32::MAX)]);
        assert_eq!(gaps(3, &[u32::MAX; 4]), [(3, u32::MAX)]);
        assert_eq!(gaps(0, &[]), [(0, u32::MAX)]);
    }

    #[test]
    fn gaps_skip_each_kept_descriptor() {
        assert_eq!(gaps(3, &[5, 9, u32::MAX]), [(3, 4), (6, 8), (10, u32::MAX)]);
        // Kept at the very start of the range, and adjacent ones: no
        // empty range is ever closed.
        assert_eq!(gaps(3, &[3, 4, 5, 8]), [(6, 7), (9, u32::MAX)]);
        // The same descriptor twice (one socket in two roles).
        assert_eq!(gaps(3, &[7, 7, 7]), [(3, 6), (8, u32::MAX)]);
    }

    #[test]
    fn gaps_at_the_top_of_the_descriptor_space() {
        // u32::MAX - 1 kept: nothing is left above it to close.
        assert_eq!(gaps(3, &[u32::MAX - 1]), [(3, u32::MAX - 2)]);
        // Nothing below `first` is ever touched.
        assert_eq!(gaps(10, &[]), [(10, u32::MAX)]);
        assert!(gaps(u32::MAX, &[]).is_empty());
    }

    #[test]
    fn gaps_and_kept_set_together_close_every_other_descriptor() {
        let mut f = fds(5);
        f.sync = 30;
        f.fifo = 8;
        f.stdio = [6, 7, 6];
        let kept = kept_set(&f, 5);
        let closed = gaps(5, &kept);
        assert_eq!(closed, [(5, 5), (9, 29), (31, u32::MAX)]);
        for fd in 5..100u32 {
            let in_gap = closed.iter().any(|&(lo, hi)| (lo..=hi).contains(&fd));
            assert_eq!(in_gap, !kept.contains(&fd), "fd {fd}");
        }
    }

    #[test]
    fn dirents_of_an_empty_buffer_are_none() {
        assert!(names(&[]).is_empty());
    }

    #[test]
    fn dirents_yield_each_name_with_its_padding() {
        let mut buf = entry(b".");
        buf.extend(entry(b".."));
        buf.extend(entry(b"0"));
        buf.extend(entry(b"17"));
        let got = names(&buf);
        assert_eq!(got.len(), 4);
        let parsed: Vec<_> = got.iter().map(|n| parse_fd(n)).collect();
        assert_eq!(parsed, [None, None, Some(0), Some(17)]);
        // The padding is part of the name slice, NULs only.
        assert_eq!(&got[3][..3], b"17\0");
        assert!(got[3][2..].iter().all(|&b| b == 0));
    }

    #[test]
    fn a_truncated_record_header_ends_the_walk() {
        let mut buf = entry(b"3");
        let whole = buf.len();
        buf.extend(entry(b"4"));
        // Cut inside the second record's d_reclen.
        buf.truncate(whole + 17);
        assert_eq!(names(&buf), [entry(b"3")[19..].to_vec()]);
        // A buffer shorter than one header.
        assert!(names(&buf[..17]).is_empty());
    }

    #[test]
    fn a_record_longer_than_the_buffer_yields_an_empty_name_and_ends() {
        let mut buf = entry(b"5");
        let len = buf.len();
        // Claim 64 bytes; only `len` are there.
        buf[16..18].copy_from_slice(&64u16.to_ne_bytes());
        assert_eq!(names(&buf), [Vec::<u8>::new()]);
        assert_eq!(parse_fd(&[]), None);
        assert!(len < 64);
    }

    #[test]
    fn a_record_too_short_for_a_name_yields_an_empty_one() {
        // d_reclen 19: header only; then a real record follows.
        let mut buf = record(b"", 19);
        buf.extend(entry(b"8"));
        let got = names(&buf);
        assert_eq!(got.len(), 2);
        assert_eq!(parse_fd(&got[0]), None);
        assert_eq!(parse_fd(&got[1]), Some(8));
    }

    #[test]
    fn a_zero_record_length_still_moves_the_walk_on() {
        // A corrupt d_reclen of 0 must not loop forever: the walk moves
        // one byte at a time and ends with the buffer.
        let buf = record(b"9\0", 0);
        let got = names(&buf);
        assert!(!got.is_empty() && got.len() <= buf.len());
        assert!(got.iter().all(|n| n.is_empty()));
    }

    #[test]
    fn proc_fd_entries_parse_as_numbers_only() {
        assert_eq!(parse_fd(b"12\0\0\0"), Some(12));
        assert_eq!(parse_fd(b"0\0"), Some(0));
        assert_eq!(parse_fd(b"4294967295\0"), Some(u32::MAX));
        assert_eq!(parse_fd(b"4294967296\0"), None);
        assert_eq!(parse_fd(b".\0"), None);
        assert_eq!(parse_fd(b"..\0"), None);
        assert_eq!(parse_fd(b"\0"), None);
        assert_eq!(parse_fd(b""), None);
        assert_eq!(parse_fd(b"1a\0"), None);
        assert_eq!(parse_fd(b"-1\0"), None);
        assert_eq!(parse_fd(b"99999999999\0"), None);
        // Without a NUL (a name that fills its record): still its digits.
        assert_eq!(parse_fd(b"42"), Some(42));
    }
}
