//! Seccomp, capabilities and no_new_privs, observed from inside real
//! containers.

mod common;

use std::io::IoSliceMut;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;

use berth::oci_spec::runtime::{
    Capability, LinuxCapabilitiesBuilder, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg,
    LinuxSeccompArgBuilder, LinuxSeccompBuilder, LinuxSeccompOperator, LinuxSyscall,
    LinuxSyscallBuilder, Spec,
};
use berth::Error;
use common::*;
use proptest::prelude::*;

/// `ENOMSG`: an errno no command here would meet by itself.
const ENOMSG: u32 = 42;
const ENOMSG_TEXT: &str = "No message of desired type";

fn rule(names: &[&str], action: LinuxSeccompAction) -> LinuxSyscallBuilder {
    LinuxSyscallBuilder::default()
        .names(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .action(action)
}

fn allow_but(syscalls: Vec<LinuxSyscall>) -> LinuxSeccomp {
    LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActAllow)
        .syscalls(syscalls)
        .build()
        .unwrap()
}

fn with_seccomp(mut spec: Spec, seccomp: LinuxSeccomp) -> Spec {
    let mut linux = spec.linux().clone().unwrap();
    linux.set_seccomp(Some(seccomp));
    spec.set_linux(Some(linux));
    spec
}

/// The next user notification on a listener descriptor
/// (`SECCOMP_IOCTL_NOTIF_RECV`); `None` once the filter is gone.
fn notif_receive(fd: RawFd) -> Option<libc::seccomp_notif> {
    loop {
        // SAFETY: an all-zero seccomp_notif is valid (plain integers), as
        // the kernel wants it before NOTIF_RECV.
        let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        // SAFETY: fd is a seccomp listener; req is a seccomp_notif the
        // kernel fills.
        let rc = unsafe { libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_RECV, &mut req) };
        if rc == 0 {
            return Some(req);
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return None;
        }
    }
}

/// Answers notification `id` with `-errno` (`SECCOMP_IOCTL_NOTIF_SEND`).
fn notif_fail(fd: RawFd, id: u64, errno: i32) {
    let mut resp = libc::seccomp_notif_resp {
        id,
        val: 0,
        error: -errno,
        flags: 0,
    };
    // SAFETY: fd is a seccomp listener; resp is a seccomp_notif_resp.
    // The process may be gone already (ENOENT): nothing to answer then.
    let _ = unsafe { libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_SEND, &mut resp) };
}

fn deny_mkdir() -> LinuxSyscall {
    rule(&["mkdir", "mkdirat"], LinuxSeccompAction::ScmpActErrno)
        .errno_ret(ENOMSG)
        .build()
        .unwrap()
}

#[tokio::test]
async fn seccomp_denied_call_returns_the_profile_errno_and_others_work() {
    let rt = runtime().await;
    let denied = with_seccomp(
        spec("mkdir /dev/denied; echo mkdir=$?; touch /dev/allowed && echo touch=$?; ls /dev/allowed"),
        allow_but(vec![deny_mkdir()]),
    );
    let out = run(&rt, "seccomp-errno", denied).await.unwrap();
    assert!(out.stderr.contains(ENOMSG_TEXT), "{out:?}");
    assert!(out.stdout.contains("mkdir=1"), "{out:?}");
    assert!(out.stdout.contains("touch=0\n/dev/allowed"), "{out:?}");

    // The same script without the rule: mkdir works, so the errno came
    // from the filter.
    let out = run(
        &rt,
        "seccomp-none",
        spec("mkdir /dev/denied; echo mkdir=$?"),
    )
    .await
    .unwrap();
    assert_eq!(out.stdout, "mkdir=0\n", "{out:?}");
}

#[tokio::test]
async fn seccomp_default_errno_applies_to_unlisted_calls() {
    let rt = runtime().await;
    // Allow-list: everything sh and mkdir need but mkdir itself.
    let mut profile = berth::security::seccomp_default::profile(&[Capability::Kill]);
    let mut calls = profile.syscalls().clone().unwrap();
    let mut names = calls[0].names().clone();
    names.retain(|n| n != "mkdir" && n != "mkdirat");
    calls[0].set_names(names);
    profile.set_syscalls(Some(calls));
    profile.set_default_errno_ret(Some(ENOMSG));
    let out = run(
        &rt,
        "seccomp-default",
        with_seccomp(
            spec("mkdir /dev/x; echo mkdir=$?; echo still here"),
            profile,
        ),
    )
    .await
    .unwrap();
    assert!(out.stderr.contains(ENOMSG_TEXT), "{out:?}");
    assert_eq!(out.stdout, "mkdir=1\nstill here\n", "{out:?}");
}

/// `kill(1, sig)` for every signal 0..=31 from the container's init (which
/// the kernel shields from its own namespace, so every call succeeds
/// unless the filter says otherwise); returns the signals refused.
async fn refused_signals(rt: &TestRuntime, arg: LinuxSeccompArg) -> Vec<u64> {
    // sh handles some signals itself: ignore them all (but SIGCHLD, which
    // it needs to wait for its children).
    let script = "for s in $(seq 1 31); do [ $s = 17 ] || trap '' $s 2>/dev/null; done; \
                  for s in $(seq 0 31); do kill -$s 1 2>/dev/null || echo $s; done";
    let profile = allow_but(vec![rule(&["kill"], LinuxSeccompAction::ScmpActErrno)
        .errno_ret(ENOMSG)
        .args(vec![arg])
        .build()
        .unwrap()]);
    let out = run(rt, "seccomp-args", with_seccomp(spec(script), profile))
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    out.stdout.lines().map(|l| l.parse().unwrap()).collect()
}

#[tokio::test]
async fn seccomp_argument_filters_match_exactly_their_values() {
    use LinuxSeccompOperator::*;
    let rt = runtime().await;
    /// Operator, value, valueTwo, and which signals it must match.
    type Case = (LinuxSeccompOperator, u64, Option<u64>, fn(u64) -> bool);
    let cases: [Case; 7] = [
        (ScmpCmpEq, 15, None, |s| s == 15),
        (ScmpCmpNe, 5, None, |s| s != 5),
        (ScmpCmpLt, 10, None, |s| s < 10),
        (ScmpCmpLe, 10, None, |s| s <= 10),
        (ScmpCmpGe, 20, None, |s| s >= 20),
        (ScmpCmpGt, 20, None, |s| s > 20),
        // value is the mask, valueTwo the datum: s % 4 == 1.
        (ScmpCmpMaskedEq, 0b11, Some(0b01), |s| s & 0b11 == 0b01),
    ];
    for (op, value, two, expect) in cases {
        let mut b = LinuxSeccompArgBuilder::default()
            .index(1usize)
            .value(value)
            .op(op);
        if let Some(t) = two {
            b = b.value_two(t);
        }
        let got = refused_signals(&rt, b.build().unwrap()).await;
        let want: Vec<u64> = (0..=31).filter(|s| expect(*s)).collect();
        assert_eq!(got, want, "{op} {value} {two:?}");
    }
}

/// What the listener got: the message and the notify descriptor.
fn accept_listener_message(listener: &UnixListener) -> (serde_json::Value, OwnedFd) {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::AsRawFd;
    let (conn, _) = listener.accept().unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .unwrap();
    let mut fd = None;
    for c in msg.cmsgs().unwrap() {
        if let ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: SCM_RIGHTS just installed these in our table.
            fd = Some(unsafe { OwnedFd::from_raw_fd(fds[0]) });
        }
    }
    let n = msg.bytes;
    (
        serde_json::from_slice(&buf[..n]).unwrap(),
        fd.expect("a descriptor"),
    )
}

#[tokio::test]
async fn seccomp_notify_listener_receives_the_fd() {
    use std::os::fd::AsRawFd;
    let rt = runtime().await;
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("listener.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let agent = std::thread::spawn(move || {
        let (msg, fd) = accept_listener_message(&listener);
        let mut seen = Vec::new();
        // Answer every notification with ENOMSG until the container's
        // filter goes away with its last process.
        while let Some(req) = notif_receive(fd.as_raw_fd()) {
            seen.push((req.pid, req.data.nr));
            notif_fail(fd.as_raw_fd(), req.id, ENOMSG as i32);
        }
        (msg, seen)
    });
    let mut profile = allow_but(vec![rule(
        &["mkdir", "mkdirat"],
        LinuxSeccompAction::ScmpActNotify,
    )
    .build()
    .unwrap()]);
    profile.set_listener_path(Some(sock.clone()));
    profile.set_listener_metadata(Some("berth-test-metadata".into()));
    let ctr = create_piped(
        &rt,
        "seccomp-notify",
        with_seccomp(spec("mkdir /dev/n; echo mkdir=$?"), profile),
    )
    .await
    .unwrap();
    let pid = ctr.pid();
    let id = ctr.id().to_string();
    ctr.start().await.unwrap();
    let out = finish(ctr).await.unwrap();
    let (msg, seen) = agent.join().unwrap();

    assert!(out.stderr.contains(ENOMSG_TEXT), "{out:?}");
    assert_eq!(out.stdout, "mkdir=1\n");
    assert_eq!(msg["fds"], serde_json::json!(["seccompFd"]), "{msg}");
    assert_eq!(msg["pid"], pid, "{msg}");
    assert_eq!(msg["metadata"], "berth-test-metadata", "{msg}");
    assert_eq!(msg["state"]["id"], id.as_str(), "{msg}");
    assert_eq!(msg["state"]["status"], "creating", "{msg}");
    // mkdir runs in a child of the container's sh.
    assert!(
        seen.iter().any(|(p, nr)| *p > 0
            && [libc::SYS_mkdir, libc::SYS_mkdirat].contains(&i64::from(*nr))),
        "{seen:?}"
    );
}

/// The capabilities of `cat`'s process, as `/proc/self/status` shows them.
fn status_caps(status: &str) -> [u64; 5] {
    let field = |name: &str| {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in {status}"));
        u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
    };
    ["CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"].map(field)
}

fn caps_of(mask: u64) -> std::collections::HashSet<Capability> {
    (0..64)
        .filter(|b| mask & (1 << b) != 0)
        .filter_map(berth::security::capabilities::name)
        .map(|n| serde_json::from_value(serde_json::json!(n)).unwrap())
        .collect()
}

/// The bounding set of this process: a container cannot get more.
fn host_bounding() -> u64 {
    status_caps(&std::fs::read_to_string("/proc/self/status").unwrap())[3]
}

/// Random capability sets the kernel accepts: inheritable and permitted
/// within bounding, effective within permitted, ambient within permitted
/// and inheritable.
fn cap_sets() -> impl Strategy<Value = (u64, u64, u64, u64, u64, u32, bool)> {
    let all = host_bounding();
    (
        any::<[u64; 5]>(),
        prop_oneof![Just(0u32), Just(1000u32)],
        any::<bool>(),
    )
        .prop_map(move |([b, i, p, e, a], uid, nnp)| {
            let bounding = b & all;
            let inheritable = i & bounding;
            let permitted = p & bounding;
            let effective = e & permitted;
            let ambient = a & permitted & inheritable;
            (
                bounding,
                inheritable,
                permitted,
                effective,
                ambient,
                uid,
                nnp,
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn capability_sets_match_the_spec((b, i, p, e, a, uid, nnp) in cap_sets()) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let r = runtime().await;
            let mut spec = spec("cat /proc/self/status");
            let process = spec.process_mut().as_mut().unwrap();
            process.set_capabilities(Some(
                LinuxCapabilitiesBuilder::default()
                    .bounding(caps_of(b))
                    .inheritable(caps_of(i))
                    .permitted(caps_of(p))
                    .effective(caps_of(e))
                    .ambient(caps_of(a))
                    .build()
                    .unwrap(),
            ));
            let mut user = process.user().clone();
            user.set_uid(uid);
            user.set_gid(uid);
            process.set_user(user);
            process.set_no_new_privileges(Some(nnp));
            let out = run(&r, "caps", spec).await.unwrap();
            assert!(out.status.success(), "{out:?}");
            let [inh, prm, eff, bnd, amb] = status_caps(&out.stdout);
            assert_eq!(bnd, b, "bounding");
            assert_eq!(inh, i, "inheritable");
            assert_eq!(amb, a, "ambient");
            // execve recomputes permitted and effective: a non-root
            // process keeps its ambient set; root gets its bounding and
            // inheritable sets (file capabilities count as full for
            // root), but under no_new_privs never more than it had.
            let want = match (uid, nnp) {
                (0, false) => b | i,
                (0, true) => (b | i) & p,
                _ => a,
            };
            assert_eq!((prm, eff), (want, want), "permitted, effective (uid {uid}, nnp {nnp})");
            // The permitted and effective sets given are what capset
            // received before execve (create fails otherwise); after it
            // only the kernel's recomputation above is visible.
            prop_assert!(e & !p == 0);
            Ok(())
        })?;
    }
}

#[tokio::test]
async fn no_new_privs_is_set_only_when_asked() {
    let rt = runtime().await;
    for asked in [true, false] {
        let mut spec = spec("grep NoNewPrivs /proc/self/status");
        spec.process_mut()
            .as_mut()
            .unwrap()
            .set_no_new_privileges(Some(asked));
        let out = run(&rt, "nnp", spec).await.unwrap();
        let want = if asked { "1" } else { "0" };
        assert_eq!(
            out.stdout.split_whitespace().collect::<Vec<_>>(),
            ["NoNewPrivs:", want],
            "{out:?}"
        );
    }
}

#[tokio::test]
async fn seccomp_loads_with_and_without_no_new_privs() {
    // Without no_new_privs the filter is loaded while CAP_SYS_ADMIN is
    // still held; with it, last. Both deny the same call.
    let rt = runtime().await;
    for nnp in [false, true] {
        let mut spec = with_seccomp(
            spec("mkdir /dev/d; echo rc=$?"),
            allow_but(vec![deny_mkdir()]),
        );
        let process = spec.process_mut().as_mut().unwrap();
        process.set_no_new_privileges(Some(nnp));
        let mut user = process.user().clone();
        user.set_uid(1000);
        user.set_gid(1000);
        process.set_user(user);
        let out = run(&rt, "seccomp-nnp", spec).await.unwrap();
        assert!(out.stderr.contains(ENOMSG_TEXT), "nnp={nnp}: {out:?}");
    }
}

#[tokio::test]
async fn the_default_profile_confines_a_container_with_cap_sys_admin() {
    let rt = runtime().await;
    let script = "unshare -m true; echo unshare=$?; linux32 uname -m; echo ok";
    // With CAP_SYS_ADMIN but the profile of the default capabilities,
    // unshare is refused with EPERM by the filter...
    let mut confined = spec(script);
    let caps: std::collections::HashSet<_> = [Capability::SysAdmin, Capability::Kill].into();
    confined
        .process_mut()
        .as_mut()
        .unwrap()
        .set_capabilities(Some(
            LinuxCapabilitiesBuilder::default()
                .bounding(caps.clone())
                .permitted(caps.clone())
                .effective(caps)
                .inheritable([])
                .ambient([])
                .build()
                .unwrap(),
        ));
    let unconfined = confined.clone();
    let confined = with_seccomp(
        confined,
        berth::security::seccomp_default::profile(&[Capability::Kill]),
    );
    let out = run(&rt, "default-profile", confined).await.unwrap();
    assert!(out.stdout.contains("unshare=1"), "{out:?}");
    assert!(out.stderr.contains("Operation not permitted"), "{out:?}");
    // ... while an allowed personality works ...
    assert!(out.stdout.contains("i686\nok"), "{out:?}");
    // ... and without a filter the capability suffices.
    let mut unconfined = unconfined;
    let mut linux = unconfined.linux().clone().unwrap();
    linux.set_seccomp(None);
    unconfined.set_linux(Some(linux));
    let out = run(&rt, "no-profile", unconfined).await.unwrap();
    assert!(out.stdout.contains("unshare=0"), "{out:?}");
}

/// Runs `spec`'s process under runc (the same config.json and rootfs) and
/// returns its stdout, or `None` without runc.
fn run_under_runc(name: &str, spec: &Spec) -> Option<String> {
    let runc = ["/usr/sbin/runc", "/usr/bin/runc"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())?;
    let dir = tempfile::tempdir().unwrap();
    berth_fixtures::bundle::write_config(dir.path(), spec).unwrap();
    let state = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(runc)
        .arg("--root")
        .arg(state.path())
        .args(["run", "--bundle"])
        .arg(dir.path())
        .arg(id(name))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test]
async fn seccomp_default_profile_runs_a_busybox_workload_as_under_runc() {
    // Files, links, modes, pipes, forks, time, randomness, personality;
    // then two calls the profile refuses without CAP_SYS_ADMIN.
    let script = "d=/dev/shm/w; mkdir $d && echo hello > $d/a && cp $d/a $d/b \
        && ln -s b $d/c && cat $d/c && chmod 600 $d/a && stat -c %a $d/a \
        && ls $d | tr '\\n' ' ' && echo && seq 1 2000 | sort -rn | head -1 \
        && sleep 0.01 && date +%s >/dev/null && id -u && uname -s && linux32 uname -m \
        && head -c 16 /dev/urandom | wc -c && (echo sub; exit 3); echo rc=$?; \
        unshare -m true 2>/dev/null; echo unshare=$?; \
        mount -t tmpfs none /mnt 2>/dev/null; echo mount=$?; \
        rm -r $d && grep -c '^Seccomp:.*2' /proc/self/status";
    let mut spec = spec(script);
    berth::security::seccomp_default::apply(&mut spec);
    assert!(spec.linux().as_ref().unwrap().seccomp().is_some());
    let rt = runtime().await;
    let out = run(&rt, "default-workload", spec.clone()).await.unwrap();
    assert_eq!(
        out.stdout,
        "hello\n600\na b c \n2000\n0\nLinux\ni686\n16\nsub\nrc=3\nunshare=1\nmount=1\n1\n",
        "{out:?}"
    );
    match run_under_runc("default-workload-runc", &spec) {
        Some(runc) => assert_eq!(out.stdout, runc, "berth and runc differ"),
        None => eprintln!("runc is not installed: berth's output checked alone"),
    }
}

/// Asserts that `spec` is refused with an invalid-spec error on `field`
/// and that nothing was made: no state directory, no cgroup (so no
/// process could have been placed in one).
async fn refused_before_any_process(rt: &TestRuntime, spec: Spec, field: &str) {
    let id = id("bad-seccomp");
    let e = rt.create(&id, bundle(spec)).await.unwrap_err();
    match &e {
        Error::InvalidSpec { field: f, .. } => assert_eq!(f, field, "{e}"),
        other => panic!("wanted an invalid-spec error on {field}, got {other:?}"),
    }
    assert!(!rt.config().root.join(&id).exists());
    let cg = format!("{}/{id}", rt.config().cgroup_parent);
    for hierarchy in ["memory", "pids", "unified"] {
        let p = std::path::Path::new("/sys/fs/cgroup")
            .join(hierarchy)
            .join(&cg);
        assert!(!p.exists(), "{} was made", p.display());
    }
}

#[tokio::test]
async fn invalid_seccomp_profiles_fail_before_any_process() {
    let rt = runtime().await;
    // A name that cannot be a system call's (runc and crun skip names
    // libseccomp does not know, and so does berth when they are well-formed).
    let unknown_name = allow_but(vec![
        deny_mkdir(),
        rule(&["No such syscall"], LinuxSeccompAction::ScmpActErrno)
            .build()
            .unwrap(),
    ]);
    refused_before_any_process(
        &rt,
        with_seccomp(spec("true"), unknown_name),
        "linux.seccomp.syscalls[1].names[0]",
    )
    .await;

    let bad_index = allow_but(vec![rule(&["kill"], LinuxSeccompAction::ScmpActErrno)
        .args(vec![LinuxSeccompArgBuilder::default()
            .index(6usize)
            .value(1u64)
            .op(LinuxSeccompOperator::ScmpCmpEq)
            .build()
            .unwrap()])
        .build()
        .unwrap()]);
    refused_before_any_process(
        &rt,
        with_seccomp(spec("true"), bad_index),
        "linux.seccomp.syscalls[0].args[0].index",
    )
    .await;

    let notify_without_listener =
        allow_but(vec![rule(&["mkdir"], LinuxSeccompAction::ScmpActNotify)
            .build()
            .unwrap()]);
    refused_before_any_process(
        &rt,
        with_seccomp(spec("true"), notify_without_listener),
        "linux.seccomp.listenerPath",
    )
    .await;

    // An architecture outside the OCI list: the bundle's config.json does
    // not even parse, and the error names the field.
    let dir = tempfile::tempdir().unwrap();
    let mut json = serde_json::to_value(spec("true")).unwrap();
    json["linux"]["seccomp"] = serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_PDP11"],
    });
    std::fs::write(dir.path().join("config.json"), json.to_string()).unwrap();
    match berth::Bundle::from_dir(dir.path()).await {
        Err(Error::InvalidSpec { field, .. }) => {
            assert_eq!(field, "linux.seccomp.architectures[1]")
        }
        other => panic!("wanted an invalid-spec error, got {other:?}"),
    }
}

#[tokio::test]
async fn an_exec_process_is_under_the_container_filter() {
    use tokio::io::AsyncReadExt;
    let rt = runtime().await;
    let spec = with_seccomp(spec("sleep 100"), allow_but(vec![deny_mkdir()]));
    let ctr = rt.create(&id("seccomp-exec"), bundle(spec)).await.unwrap();
    ctr.start().await.unwrap();
    let mut process = ctr.spec().await.unwrap().process().clone().unwrap();
    process.set_args(Some(vec![
        "sh".into(),
        "-c".into(),
        "grep Seccomp: /proc/self/status; mkdir /dev/e 2>&1; echo rc=$?".into(),
    ]));
    let mut opts = berth::ExecOptions::default();
    opts.stdout = berth::Stdio::Piped;
    let p = ctr.exec(&process, opts).await.unwrap();
    let mut text = String::new();
    p.take_stdout()
        .unwrap()
        .read_to_string(&mut text)
        .await
        .unwrap();
    p.wait().await.unwrap();
    ctr.force_delete().await.unwrap();
    assert!(text.starts_with("Seccomp:\t2\n"), "{text}");
    assert!(
        text.contains(ENOMSG_TEXT) && text.contains("rc=1"),
        "{text}"
    );
}

#[tokio::test]
async fn personality_scheduler_and_io_priority_are_applied() {
    use berth::oci_spec::runtime::{
        IOPriorityClass, LinuxIOPriorityBuilder, LinuxPersonalityBuilder, LinuxPersonalityDomain,
        LinuxSchedulerPolicy, SchedulerBuilder,
    };
    let rt = runtime().await;
    // Fields 19 and 41 of stat: nice and policy (awk's own, inherited).
    let mut s = spec("uname -m; cut -d' ' -f19,41 /proc/self/stat; ionice");
    let mut linux = s.linux().clone().unwrap();
    linux.set_personality(Some(
        LinuxPersonalityBuilder::default()
            .domain(LinuxPersonalityDomain::PerLinux32)
            .build()
            .unwrap(),
    ));
    s.set_linux(Some(linux));
    let p = s.process_mut().as_mut().unwrap();
    p.set_scheduler(Some(
        SchedulerBuilder::default()
            .policy(LinuxSchedulerPolicy::SchedBatch)
            .nice(7)
            .build()
            .unwrap(),
    ));
    p.set_io_priority(Some(
        LinuxIOPriorityBuilder::default()
            .class(IOPriorityClass::IoprioClassBe)
            .priority(5)
            .build()
            .unwrap(),
    ));
    let out = run(&rt, "attrs", s).await.unwrap();
    assert!(out.status.success(), "{out:?}");
    // SCHED_BATCH is 3.
    assert_eq!(out.stdout, "i686\n7 3\nbest-effort: prio 5\n", "{out:?}");

    // And without them: the defaults.
    let out = run(
        &rt,
        "no-attrs",
        spec("uname -m; cut -d' ' -f19,41 /proc/self/stat"),
    )
    .await
    .unwrap();
    assert_eq!(out.stdout, "x86_64\n0 0\n", "{out:?}");
}

#[tokio::test]
async fn lsm_labels_on_a_host_without_the_lsm_are_an_error_before_any_process() {
    let rt = runtime().await;
    let lsms = berth::host::Host::get().lsms;
    type Case = (&'static str, bool, fn(&mut Spec));
    let cases: [Case; 3] = [
        ("process.apparmorProfile", lsms.apparmor, |s| {
            let p = s.process_mut().as_mut().unwrap();
            p.set_apparmor_profile(Some("berth-default".into()));
        }),
        ("process.selinuxLabel", lsms.selinux, |s| {
            let p = s.process_mut().as_mut().unwrap();
            p.set_selinux_label(Some("system_u:system_r:container_t:s0".into()));
        }),
        ("linux.mountLabel", lsms.selinux, |s| {
            let mut l = s.linux().clone().unwrap();
            l.set_mount_label(Some("system_u:object_r:container_file_t:s0".into()));
            s.set_linux(Some(l));
        }),
    ];
    for (field, present, ask) in cases {
        if present {
            eprintln!("skipping {field}: this host has the LSM");
            continue;
        }
        let mut s = spec("true");
        ask(&mut s);
        let id = id("lsm");
        match rt.create(&id, bundle(s)).await {
            Err(Error::Unsupported(msg)) => assert!(msg.starts_with(field), "{msg}"),
            other => panic!("{field}: wanted Unsupported, got {other:?}"),
        }
        assert!(!rt.config().root.join(&id).exists());
    }
}

#[tokio::test]
async fn seccomp_filter_flags_load_and_the_filter_still_applies() {
    use berth::oci_spec::runtime::LinuxSeccompFilterFlag::*;
    let rt = runtime().await;
    let mut profile = allow_but(vec![deny_mkdir()]);
    profile.set_flags(Some(vec![
        SeccompFilterFlagTsync,
        SeccompFilterFlagLog,
        SeccompFilterFlagSpecAllow,
    ]));
    let out = run(
        &rt,
        "seccomp-flags",
        with_seccomp(
            spec("grep Seccomp: /proc/self/status; mkdir /dev/f"),
            profile.clone(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(out.stdout, "Seccomp:\t2\n", "{out:?}");
    assert!(out.stderr.contains(ENOMSG_TEXT), "{out:?}");

    // WAIT_KILLABLE_RECV only makes sense (and only loads) with a listener.
    profile.set_flags(Some(vec![SeccompFilterFlagWaitKillableRecv]));
    refused_before_any_process(
        &rt,
        with_seccomp(spec("true"), profile),
        "linux.seccomp.flags",
    )
    .await;
}

#[tokio::test]
async fn seccomp_notify_listener_gets_the_fd_of_an_exec_process_too() {
    use std::os::fd::AsRawFd;
    use tokio::io::AsyncReadExt;
    let rt = runtime().await;
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("listener.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    // One connection per process: the container's first, then the exec.
    let agent = std::thread::spawn(move || {
        let mut handlers = Vec::new();
        let mut messages = Vec::new();
        for _ in 0..2 {
            let (msg, fd) = accept_listener_message(&listener);
            messages.push(msg);
            handlers.push(std::thread::spawn(move || {
                while let Some(req) = notif_receive(fd.as_raw_fd()) {
                    notif_fail(fd.as_raw_fd(), req.id, ENOMSG as i32);
                }
            }));
        }
        for h in handlers {
            h.join().unwrap();
        }
        messages
    });
    let mut profile = allow_but(vec![rule(
        &["mkdir", "mkdirat"],
        LinuxSeccompAction::ScmpActNotify,
    )
    .build()
    .unwrap()]);
    profile.set_listener_path(Some(sock.clone()));
    let ctr = rt
        .create(
            &id("notify-exec"),
            bundle(with_seccomp(spec("sleep 100"), profile)),
        )
        .await
        .unwrap();
    ctr.start().await.unwrap();
    let mut process = ctr.spec().await.unwrap().process().clone().unwrap();
    process.set_args(Some(vec![
        "sh".into(),
        "-c".into(),
        "mkdir /dev/e 2>&1; echo rc=$?".into(),
    ]));
    let mut opts = berth::ExecOptions::default();
    opts.stdout = berth::Stdio::Piped;
    let p = ctr.exec(&process, opts).await.unwrap();
    let mut text = String::new();
    p.take_stdout()
        .unwrap()
        .read_to_string(&mut text)
        .await
        .unwrap();
    p.wait().await.unwrap();
    let exec_pid = p.pid();
    ctr.force_delete().await.unwrap();
    let messages = agent.join().unwrap();
    assert!(
        text.contains(ENOMSG_TEXT) && text.contains("rc=1"),
        "{text}"
    );
    assert_eq!(messages[0]["state"]["status"], "creating");
    assert_eq!(messages[1]["state"]["status"], "running");
    assert_eq!(messages[1]["pid"], exec_pid, "{}", messages[1]);
}
