//! Snapshots of spec → plan compilation for representative specs, and of
//! the error messages for invalid ones. Pure: no root, no processes.
//!
//! The rootfs is `/` so that paths in the snapshots are stable; nothing is
//! executed.

use std::path::Path;

use oci_spec::runtime::{
    get_rootless_mounts, Capability, HookBuilder, HooksBuilder, Linux, LinuxDeviceBuilder,
    LinuxDeviceType, LinuxNamespaceBuilder, LinuxNamespaceType, MountBuilder, PosixRlimitBuilder,
    PosixRlimitType, Root, Spec, UserBuilder,
};

use super::{compile, Options};
use crate::host::Host;

fn base() -> Spec {
    let mut spec = Spec::default();
    let mut root = Root::default();
    root.set_path("/".into());
    root.set_readonly(Some(true));
    spec.set_root(Some(root));
    spec.set_hostname(Some("berth".into()));
    spec
}

fn plan(spec: &Spec) -> super::Plan {
    compile(spec, Path::new("/"), &Host::fixture(), &Options::default()).expect("valid spec")
}

#[test]
fn runc_default_spec() {
    insta::assert_yaml_snapshot!(plan(&base()));
}

#[test]
fn rootless_spec() {
    let mut spec = base();
    spec.set_linux(Some(Linux::rootless(1000, 1000)));
    spec.set_mounts(Some(get_rootless_mounts()));
    insta::assert_yaml_snapshot!(plan(&spec));
}

#[test]
fn maximal_spec() {
    let mut spec = base();
    spec.set_domainname(Some("example.org".into()));
    let p = spec.process_mut().as_mut().unwrap();
    p.set_terminal(Some(true));
    p.set_args(Some(vec!["server".into(), "--port".into(), "80".into()]));
    p.set_env(Some(vec!["PATH=/usr/bin:/bin".into(), "MODE=prod".into()]));
    p.set_cwd("/srv".into());
    p.set_oom_score_adj(Some(-500));
    p.set_user(
        UserBuilder::default()
            .uid(1000u32)
            .gid(1000u32)
            .additional_gids(vec![27u32, 100])
            .umask(0o077u32)
            .build()
            .unwrap(),
    );
    p.set_rlimits(Some(vec![
        PosixRlimitBuilder::default()
            .typ(PosixRlimitType::RlimitNofile)
            .soft(4096u64)
            .hard(8192u64)
            .build()
            .unwrap(),
        PosixRlimitBuilder::default()
            .typ(PosixRlimitType::RlimitCore)
            .soft(0u64)
            .hard(0u64)
            .build()
            .unwrap(),
    ]));
    let mut caps = p.capabilities().clone().unwrap();
    caps.set_ambient(Some([Capability::NetBindService].into()));
    p.set_capabilities(Some(caps));

    let mut mounts = spec.mounts().clone().unwrap();
    mounts.push(
        MountBuilder::default()
            .destination("/etc/resolv.conf")
            .source("/dev/null")
            .options(vec![
                "bind".into(),
                "ro".into(),
                "nosuid".into(),
                "nodev".into(),
                "rprivate".into(),
            ])
            .build()
            .unwrap(),
    );
    mounts.push(
        MountBuilder::default()
            .destination("/var/data")
            .source("/tmp")
            .typ("bind")
            .options(vec!["rbind".into(), "rshared".into()])
            .build()
            .unwrap(),
    );
    spec.set_mounts(Some(mounts));

    let mut linux = spec.linux().clone().unwrap();
    linux.set_rootfs_propagation(Some("shared".into()));
    linux.set_sysctl(Some(
        [
            ("net.ipv4.ip_forward".to_string(), "1".to_string()),
            ("kernel.shmmax".to_string(), "65536".to_string()),
        ]
        .into(),
    ));
    linux.set_devices(Some(vec![LinuxDeviceBuilder::default()
        .path("/dev/fuse")
        .typ(LinuxDeviceType::C)
        .major(10i64)
        .minor(229i64)
        .file_mode(0o600u32)
        .build()
        .unwrap()]));
    let mut ns = linux.namespaces().clone().unwrap();
    ns.retain(|n| n.typ() != LinuxNamespaceType::Network);
    ns.push(
        LinuxNamespaceBuilder::default()
            .typ(LinuxNamespaceType::Network)
            .path("/proc/self/ns/net")
            .build()
            .unwrap(),
    );
    linux.set_namespaces(Some(ns));
    spec.set_linux(Some(linux));
    spec.set_hooks(Some(
        HooksBuilder::default()
            .create_runtime(vec![HookBuilder::default()
                .path("/usr/bin/true")
                .build()
                .unwrap()])
            .build()
            .unwrap(),
    ));
    let opts = Options {
        no_pivot: true,
        preserve_fds: 2,
        cgroup_path: Some("berth/maximal".into()),
        seccomp: None,
        rootless: false,
        rootless_setgroups: false,
        personality: None,
        rootfs_mount: Some(crate::RootfsMount::new(
            "overlay",
            "overlay",
            "lowerdir=/l2:/l1,upperdir=/u,workdir=/w,userxattr",
        )),
    };
    insta::assert_yaml_snapshot!(compile(&spec, Path::new("/"), &Host::fixture(), &opts).unwrap());
}

/// Where the filter goes: first of the process's steps without
/// no_new_privs (the kernel then wants CAP_SYS_ADMIN), last before the wait
/// for start with it.
#[test]
fn seccomp_placement() {
    let mut out = String::new();
    for nnp in [false, true] {
        let mut spec = base();
        spec.process_mut()
            .as_mut()
            .unwrap()
            .set_no_new_privileges(Some(nnp));
        let mut l = spec.linux().clone().unwrap();
        l.set_seccomp(Some(crate::security::seccomp_default::profile(&[
            Capability::Kill,
        ])));
        spec.set_linux(Some(l));
        let steps: Vec<String> = plan(&spec)
            .steps
            .iter()
            .skip_while(|s| !matches!(s, super::Step::Rlimit { .. } | super::Step::Seccomp(_)))
            .map(|s| match s {
                super::Step::Seccomp(f) => format!("Seccomp {} flags={}", f.summary, f.flags),
                other => format!("{other:?}")
                    .split([' ', '(', '{'])
                    .next()
                    .unwrap()
                    .to_string(),
            })
            .collect();
        out.push_str(&format!(
            "no_new_privileges={nnp}:\n  {}\n",
            steps.join("\n  ")
        ));
    }
    insta::assert_snapshot!(out);
}

#[test]
fn error_messages() {
    type Mutation = Box<dyn Fn(&mut Spec)>;
    let cases: Vec<(&str, Mutation)> = vec![
        ("no process", Box::new(|s| s.set_process(None).pipe())),
        (
            "empty args",
            Box::new(|s| {
                s.process_mut()
                    .as_mut()
                    .unwrap()
                    .set_args(Some(vec![]))
                    .pipe()
            }),
        ),
        (
            "relative cwd",
            Box::new(|s| {
                s.process_mut()
                    .as_mut()
                    .unwrap()
                    .set_cwd("srv".into())
                    .pipe()
            }),
        ),
        (
            "missing rootfs",
            Box::new(|s| {
                let mut r = s.root().clone().unwrap();
                r.set_path("/nonexistent".into());
                s.set_root(Some(r));
            }),
        ),
        (
            "relative mount",
            Box::new(|s| push_mount(s, "run", Some("tmpfs"), None, &[])),
        ),
        (
            "escaping mount",
            Box::new(|s| push_mount(s, "/a/../../b", Some("tmpfs"), None, &[])),
        ),
        (
            "unknown fs type",
            Box::new(|s| push_mount(s, "/run", Some("nosuchfs"), None, &[])),
        ),
        (
            "bind without source",
            Box::new(|s| push_mount(s, "/run", None, None, &["bind"])),
        ),
        (
            "idmap option",
            Box::new(|s| push_mount(s, "/run", None, Some("/tmp"), &["bind", "idmap"])),
        ),
        (
            "hostname without uts",
            Box::new(|s| {
                let mut l = s.linux().clone().unwrap();
                let mut ns = l.namespaces().clone().unwrap();
                ns.retain(|n| n.typ() != LinuxNamespaceType::Uts);
                l.set_namespaces(Some(ns));
                s.set_linux(Some(l));
            }),
        ),
        (
            "host sysctl",
            Box::new(|s| {
                let mut l = s.linux().clone().unwrap();
                l.set_sysctl(Some(
                    [("vm.swappiness".to_string(), "1".to_string())].into(),
                ));
                s.set_linux(Some(l));
            }),
        ),
        (
            "duplicate rlimit",
            Box::new(|s| {
                let r = PosixRlimitBuilder::default()
                    .typ(PosixRlimitType::RlimitNofile)
                    .soft(1u64)
                    .hard(2u64)
                    .build()
                    .unwrap();
                s.process_mut()
                    .as_mut()
                    .unwrap()
                    .set_rlimits(Some(vec![r, r]));
            }),
        ),
        (
            "soft above hard",
            Box::new(|s| {
                let r = PosixRlimitBuilder::default()
                    .typ(PosixRlimitType::RlimitNofile)
                    .soft(3u64)
                    .hard(2u64)
                    .build()
                    .unwrap();
                s.process_mut().as_mut().unwrap().set_rlimits(Some(vec![r]));
            }),
        ),
        (
            "uid map without userns",
            Box::new(|s| {
                let mut l = s.linux().clone().unwrap();
                l.set_uid_mappings(Some(vec![Default::default()]));
                s.set_linux(Some(l));
            }),
        ),
        (
            "device of type a",
            Box::new(|s| {
                let mut l = s.linux().clone().unwrap();
                l.set_devices(Some(vec![LinuxDeviceBuilder::default()
                    .path("/dev/x")
                    .typ(LinuxDeviceType::A)
                    .build()
                    .unwrap()]));
                s.set_linux(Some(l));
            }),
        ),
        (
            "bad propagation",
            Box::new(|s| {
                let mut l = s.linux().clone().unwrap();
                l.set_rootfs_propagation(Some("sideways".into()));
                s.set_linux(Some(l));
            }),
        ),
        (
            "inheritable capability outside bounding",
            Box::new(|s| {
                let p = s.process_mut().as_mut().unwrap();
                let mut caps = p.capabilities().clone().unwrap();
                caps.set_inheritable(Some([Capability::SysAdmin].into()));
                p.set_capabilities(Some(caps));
            }),
        ),
        (
            "malformed seccomp syscall name",
            Box::new(|s| {
                let mut profile = crate::security::seccomp_default::profile(&[]);
                let mut calls = profile.syscalls().clone().unwrap();
                let mut names = calls[0].names().clone();
                names.insert(3, "Frobnicate!".into());
                calls[0].set_names(names);
                profile.set_syscalls(Some(calls));
                let mut l = s.linux().clone().unwrap();
                l.set_seccomp(Some(profile));
                s.set_linux(Some(l));
            }),
        ),
        (
            "apparmor on a host without it",
            Box::new(|s| {
                s.process_mut()
                    .as_mut()
                    .unwrap()
                    .set_apparmor_profile(Some("berth".into()))
                    .pipe()
            }),
        ),
        (
            "real-time policy without a priority",
            Box::new(|s| {
                s.process_mut()
                    .as_mut()
                    .unwrap()
                    .set_scheduler(Some(
                        oci_spec::runtime::SchedulerBuilder::default()
                            .policy(oci_spec::runtime::LinuxSchedulerPolicy::SchedFifo)
                            .build()
                            .unwrap(),
                    ))
                    .pipe()
            }),
        ),
        (
            "io priority out of range",
            Box::new(|s| {
                s.process_mut()
                    .as_mut()
                    .unwrap()
                    .set_io_priority(Some(
                        oci_spec::runtime::LinuxIOPriorityBuilder::default()
                            .class(oci_spec::runtime::IOPriorityClass::IoprioClassBe)
                            .priority(8)
                            .build()
                            .unwrap(),
                    ))
                    .pipe()
            }),
        ),
        (
            "env without =",
            Box::new(|s| {
                s.process_mut()
                    .as_mut()
                    .unwrap()
                    .set_env(Some(vec!["JUSTANAME".into()]))
                    .pipe()
            }),
        ),
    ];
    let mut out = String::new();
    for (name, mutate) in cases {
        let mut spec = base();
        mutate(&mut spec);
        let err =
            compile(&spec, Path::new("/"), &Host::fixture(), &Options::default()).unwrap_err();
        out.push_str(&format!("{name}: {err}\n"));
    }
    insta::assert_snapshot!(out);
}

fn push_mount(s: &mut Spec, dest: &str, typ: Option<&str>, source: Option<&str>, options: &[&str]) {
    let mut b = MountBuilder::default().destination(dest);
    if let Some(t) = typ {
        b = b.typ(t);
    }
    if let Some(src) = source {
        b = b.source(src);
    }
    b = b.options(options.iter().map(|o| o.to_string()).collect::<Vec<_>>());
    let mut m = s.mounts().clone().unwrap();
    m.push(b.build().unwrap());
    s.set_mounts(Some(m));
}

/// Discards a setter's `&mut Self` so closures read as statements.
trait Pipe {
    fn pipe(&mut self) {}
}
impl<T> Pipe for T {}

/// Each step's kind, which `Error::Init` carries, agrees with its
/// description; the maximal spec has a step of most kinds.
#[test]
fn step_kinds_match_their_descriptions() {
    use crate::InitStep as K;
    let mut spec = base();
    spec.process_mut()
        .as_mut()
        .unwrap()
        .set_args(Some(vec!["server".into()]));
    let p = plan(&spec);
    let kinds: Vec<_> = (0..p.steps.len()).map(|i| p.step_kind(i)).collect();
    for (i, kind) in kinds.iter().enumerate() {
        let (text, _) = p.describe(i);
        let want = match text.split(' ').next().unwrap() {
            "mount" => Some(K::Mount),
            "pivot_root" => Some(K::PivotRoot),
            "find" => Some(K::FindExecutable),
            "execve" => Some(K::Exec),
            "setuid" => Some(K::SetUid),
            "mask" => Some(K::MaskPath),
            _ => None,
        };
        if let Some(want) = want {
            assert_eq!(*kind, want, "step {i}: {text}");
        }
    }
    for k in [
        K::Mount,
        K::PivotRoot,
        K::FindExecutable,
        K::Exec,
        K::MaskPath,
    ] {
        assert!(kinds.contains(&k), "no {k:?} in {kinds:?}");
    }
    // Past the end: no step the parent knows.
    assert_eq!(p.step_kind(p.steps.len()), K::Unknown);
    assert_eq!(p.step_kind(usize::MAX), K::Unknown);
}
