//! Behaviour a client can see, compared with runc's: the same bundle runs
//! under runc and under berth, each with a private `--root`, and what each
//! shows is compared. Run as root; runc is installed by
//! scripts/install-deps.sh.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use berth::oci_spec::runtime::{HookBuilder, HooksBuilder, MountBuilder, Spec};
use serde_json::Value;

const BERTH: &str = env!("CARGO_BIN_EXE_berth");

/// One runtime binary with a state root of the test's own; the root is
/// checked empty and removed at the end.
struct Rt {
    bin: &'static str,
    root: PathBuf,
}

impl Rt {
    fn new(bin: &'static str) -> Rt {
        berth_fixtures::require_root();
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = Path::new(bin).file_name().unwrap().to_str().unwrap();
        Rt {
            bin,
            root: PathBuf::from(format!(
                "/run/berth-compat-{name}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            )),
        }
    }

    /// runc, then berth: the reference first.
    fn both() -> [Rt; 2] {
        let found = Command::new("sh")
            .args(["-c", "command -v runc"])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(found, "runc is not installed: run scripts/install-deps.sh");
        [Rt::new("runc"), Rt::new(BERTH)]
    }

    fn name(&self) -> &'static str {
        if self.bin == BERTH {
            "berth"
        } else {
            "runc"
        }
    }

    /// Runs the runtime with stdout and stderr in files, not pipes: a
    /// container that `create` leaves behind inherits them.
    fn run(&self, args: &[&str]) -> Output {
        self.run_env(args, &[])
    }

    fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        berth_fixtures::output_via_files(
            Command::new(self.bin)
                .arg("--root")
                .arg(&self.root)
                .args(args)
                .envs(env.iter().copied()),
        )
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{} {args:?} failed: {}",
            self.name(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn state(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["state", id])).unwrap()
    }

    fn status(&self, id: &str) -> String {
        self.state(id)["status"].as_str().unwrap().to_string()
    }

    /// `list --format json`'s status of `id`.
    fn listed_status(&self, id: &str) -> String {
        let all: Vec<Value> =
            serde_json::from_str(&self.ok(&["list", "--format", "json"])).unwrap();
        let me = all.iter().find(|c| c["id"] == id).expect("listed");
        me["status"].as_str().unwrap().to_string()
    }
}

impl Drop for Rt {
    fn drop(&mut self) {
        let left: Vec<_> = std::fs::read_dir(&self.root)
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        for id in &left {
            let _ = self.run(&["delete", "--force", id.to_str().unwrap()]);
        }
        let _ = std::fs::remove_dir_all(&self.root);
        if !std::thread::panicking() {
            assert!(left.is_empty(), "{} left {left:?} behind", self.name());
        }
    }
}

/// The fixtures' runc-like spec running `args` on the shared rootfs.
fn spec(args: &[&str]) -> Spec {
    let mut spec =
        berth_fixtures::bundle::spec(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    let mut root = spec.root().clone().unwrap();
    root.set_path(berth_fixtures::rootfs::shared().unwrap());
    spec.set_root(Some(root));
    spec
}

fn bundle(spec: &Spec) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    berth_fixtures::bundle::write_config(dir.path(), spec).unwrap();
    dir
}

fn id(name: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Item 5: `exec --env NAME=...` replaces the spec's NAME, once.
#[test]
fn exec_env_overrides_the_specs_variable_as_runc_does() {
    let mut spec = spec(&["sleep", "100"]);
    let process = spec.process_mut().as_mut().unwrap();
    let mut env = process.env().clone().unwrap_or_default();
    env.push("MY_VAR=spec".into());
    process.set_env(Some(env));
    let b = bundle(&spec);
    let mut seen = Vec::new();
    for rt in Rt::both() {
        let id = id("env");
        rt.ok(&["run", "--detach", "--bundle", path(b.path()), &id]);
        let out = rt.ok(&["exec", "--env", "MY_VAR=cli", &id, "env"]);
        rt.ok(&["delete", "--force", &id]);
        let mine: Vec<String> = out
            .lines()
            .filter(|l| l.starts_with("MY_VAR="))
            .map(String::from)
            .collect();
        seen.push((rt.name(), mine));
    }
    assert_eq!(seen[0].1, ["MY_VAR=cli"], "runc: {seen:?}");
    assert_eq!(seen[1].1, seen[0].1, "{seen:?}");
}

/// The capability sets of the process running `status`'s text.
fn cap_sets(status: &str) -> Vec<(String, u64)> {
    status
        .lines()
        .filter(|l| l.starts_with("Cap"))
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.to_string(), u64::from_str_radix(v.trim(), 16).unwrap())
        })
        .collect()
}

/// Item 6 (CVE-2022-29162): `exec --cap` raises the capability in the
/// bounding, effective and permitted sets, never in the inheritable one;
/// an inheritable set that a `--process` spec asks for is given as is.
#[test]
fn exec_cap_leaves_the_inheritable_set_empty_as_runc_does() {
    // runc spec's sets, without the ambient one (item 1): no inheritable.
    let mut spec = spec(&["sleep", "100"]);
    let process = spec.process_mut().as_mut().unwrap();
    let mut caps = process.capabilities().clone().unwrap();
    caps.set_inheritable(None).set_ambient(None);
    process.set_capabilities(Some(caps));
    let b = bundle(&spec);
    let sys_admin = 1u64 << 21;
    let mut seen = Vec::new();
    for rt in Rt::both() {
        let id = id("cap");
        rt.ok(&["run", "--detach", "--bundle", path(b.path()), &id]);
        let cli = cap_sets(&rt.ok(&[
            "exec",
            "--cap",
            "CAP_SYS_ADMIN",
            &id,
            "cat",
            "/proc/self/status",
        ]));
        // The SDK's exec path without the CLI's flags: a process.json.
        let process = serde_json::json!({
            "args": ["cat", "/proc/self/status"],
            "cwd": "/",
            "user": {"uid": 0, "gid": 0},
            "env": ["PATH=/bin:/usr/bin"],
            "capabilities": {
                "bounding": ["CAP_KILL", "CAP_CHOWN"],
                "effective": ["CAP_KILL"],
                "permitted": ["CAP_KILL"],
                "inheritable": ["CAP_CHOWN"]
            }
        });
        let file = b.path().join(format!("process-{}.json", rt.name()));
        std::fs::write(&file, process.to_string()).unwrap();
        let given = cap_sets(&rt.ok(&["exec", "--process", path(&file), &id]));
        rt.ok(&["delete", "--force", &id]);
        seen.push((cli, given));
    }
    let (runc, berth) = (&seen[0], &seen[1]);
    let get = |sets: &[(String, u64)], k: &str| sets.iter().find(|(n, _)| n == k).unwrap().1;
    assert_eq!(get(&runc.0, "CapInh"), 0, "runc: {runc:?}");
    assert_ne!(get(&runc.0, "CapEff") & sys_admin, 0, "runc: {runc:?}");
    assert_eq!(berth.0, runc.0, "exec --cap: berth vs runc");
    // CAP_CHOWN is capability 0.
    assert_eq!(get(&berth.1, "CapInh"), 1);
    assert_eq!(berth.1, runc.1, "exec --process: berth vs runc");
}

/// A host directory bound on the container's /tmp, for files hooks write.
fn with_tmp(spec: &mut Spec, dir: &Path) {
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    mounts.push(
        MountBuilder::default()
            .destination("/tmp")
            .typ("bind")
            .source(dir)
            .options(vec!["rbind".into(), "rw".into()])
            .build()
            .unwrap(),
    );
    spec.set_mounts(Some(mounts));
}

fn sh_hook(script: &str) -> berth::oci_spec::runtime::Hook {
    HookBuilder::default()
        .path("/bin/sh")
        .args(vec!["sh".into(), "-c".into(), script.into()])
        .build()
        .unwrap()
}

/// Item 8: a failing startContainer hook stops the container: its init
/// is gone, it reads `stopped`, and a plain `delete` removes it.
#[test]
fn failing_start_container_hook_stops_the_container_as_runc_does() {
    let mut spec = spec(&["sleep", "100"]);
    spec.set_hooks(Some(
        HooksBuilder::default()
            .start_container(vec![sh_hook("exit 3")])
            .build()
            .unwrap(),
    ));
    let b = bundle(&spec);
    let mut seen = Vec::new();
    for rt in Rt::both() {
        let id = id("starthook");
        rt.ok(&["create", "--bundle", path(b.path()), &id]);
        let pid = rt.state(&id)["pid"].as_i64().unwrap();
        let start = rt.run(&["start", &id]);
        // runc 1.1.5's `start` only releases its init, which then fails
        // alone: wait for that before reading the state.
        wait_gone(pid as i32);
        let status = rt.status(&id);
        let deleted = rt.run(&["delete", &id]).status.success();
        seen.push((rt.name(), status, deleted));
        if rt.name() == "berth" {
            assert!(!start.status.success(), "berth start succeeded");
            assert!(stderr(&start).contains("startContainer hook"), "{start:?}");
        }
    }
    assert_eq!(seen[0].1, "stopped", "{seen:?}");
    assert!(seen[0].2, "{seen:?}");
    assert_eq!(seen[1].1, seen[0].1, "{seen:?}");
    assert_eq!(seen[1].2, seen[0].2, "{seen:?}");
}

/// Waits until `pid` is gone or a zombie (its parent may be this
/// machine's init, which reaps when it gets to it).
fn wait_gone(pid: i32) {
    for _ in 0..1000 {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(s)
                if !s
                    .rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z') => {}
            _ => return,
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("process {pid} did not end");
}

/// Item 8: hooks with no `env` of their own get what runc gives them: the
/// container process's environment for startContainer (run in the
/// container), the runtime's own for createRuntime (run by the runtime).
#[test]
fn hooks_without_env_get_the_environment_runc_gives() {
    let mut seen = Vec::new();
    for rt in Rt::both() {
        let out = tempfile::tempdir().unwrap();
        let mut spec = spec(&["true"]);
        let process = spec.process_mut().as_mut().unwrap();
        let mut env = process.env().clone().unwrap_or_default();
        env.push("MY_VAR=spec".into());
        process.set_env(Some(env));
        with_tmp(&mut spec, out.path());
        spec.set_hooks(Some(
            HooksBuilder::default()
                .create_runtime(vec![sh_hook(&format!(
                    "env > {}/runtime.env",
                    out.path().display()
                ))])
                // Before pivot_root: the host's paths, in both runtimes.
                .create_container(vec![sh_hook(&format!(
                    "env > {}/create.env",
                    out.path().display()
                ))])
                .start_container(vec![sh_hook("env > /tmp/start.env")])
                .build()
                .unwrap(),
        ));
        let b = bundle(&spec);
        let id = id("hookenv");
        let marker = [("BERTH_TEST_CALLER", "here")];
        let o = rt.run_env(&["create", "--bundle", path(b.path()), &id], &marker);
        assert!(o.status.success(), "{}: {}", rt.name(), stderr(&o));
        let o = rt.run_env(&["start", &id], &marker);
        assert!(o.status.success(), "{}: {}", rt.name(), stderr(&o));
        let pid = rt.state(&id)["pid"].as_i64().unwrap_or(0) as i32;
        if pid > 0 {
            wait_gone(pid);
        }
        rt.ok(&["delete", "--force", &id]);
        let read = |f: &str| std::fs::read_to_string(out.path().join(f)).unwrap();
        let has = |text: &str, line: &str| text.lines().any(|l| l == line);
        // Per hook: the process's MY_VAR, the caller's marker.
        let env = |f: &str| {
            let text = read(f);
            (
                has(&text, "MY_VAR=spec"),
                has(&text, "BERTH_TEST_CALLER=here"),
            )
        };
        seen.push((
            rt.name(),
            [env("runtime.env"), env("create.env"), env("start.env")],
        ));
    }
    assert_eq!(
        seen[0].1,
        [(false, true), (true, false), (true, false)],
        "runc: {seen:?}"
    );
    assert_eq!(seen[1].1, seen[0].1, "{seen:?}");
}

/// Item 8: a failing poststart hook fails `start` and stops the
/// container, which `delete` then removes. (runc 1.1.5 runs poststart
/// hooks during `create`, which then fails: the lifecycle fails too, and
/// nothing is left running.)
#[test]
fn failing_poststart_hook_fails_start() {
    let mut spec = spec(&["sleep", "100"]);
    spec.set_hooks(Some(
        HooksBuilder::default()
            .poststart(vec![sh_hook("exit 4")])
            .build()
            .unwrap(),
    ));
    let b = bundle(&spec);
    let [runc, berth] = Rt::both();

    let id_r = id("poststart");
    let created = runc.run(&["create", "--bundle", path(b.path()), &id_r]);
    let lifecycle_ok = created.status.success() && runc.run(&["start", &id_r]).status.success();
    assert!(
        !lifecycle_ok,
        "runc ran a container whose poststart hook fails"
    );
    let _ = runc.run(&["delete", "--force", &id_r]);

    let id = id("poststart");
    berth.ok(&["create", "--bundle", path(b.path()), &id]);
    let pid = berth.state(&id)["pid"].as_i64().unwrap() as i32;
    let start = berth.run(&["start", &id]);
    assert!(!start.status.success(), "berth start succeeded");
    assert!(stderr(&start).contains("poststart hook"), "{start:?}");
    wait_gone(pid);
    assert_eq!(berth.status(&id), "stopped");
    berth.ok(&["delete", &id]);
}

/// Item 9: `kill KILL` of a created container, then `delete` at once,
/// works every time (runc: every time too); so does a `SIGKILL` sent from
/// outside the runtime (then `delete` sees the dying init as stopped).
#[test]
fn kill_of_a_created_container_then_delete_always_works() {
    let b = bundle(&spec(&["sleep", "100"]));
    for rt in Rt::both() {
        for i in 0..30 {
            let id = id("killdel");
            rt.ok(&["create", "--bundle", path(b.path()), &id]);
            if i % 2 == 0 {
                rt.ok(&["kill", &id, "KILL"]);
            } else {
                let pid = rt.state(&id)["pid"].as_i64().unwrap() as i32;
                nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                )
                .unwrap();
            }
            let out = rt.run(&["delete", &id]);
            if !out.status.success() {
                let _ = rt.run(&["delete", "--force", &id]);
                panic!("{} round {i}: delete failed: {}", rt.name(), stderr(&out));
            }
        }
    }
}

/// Item 13: a paused container reads `paused` in `state` and `list`, and
/// `running` again once resumed.
#[test]
fn a_paused_container_reads_paused_as_in_runc() {
    let b = bundle(&spec(&["sleep", "100"]));
    let mut seen = Vec::new();
    for rt in Rt::both() {
        let id = id("paused");
        rt.ok(&["run", "--detach", "--bundle", path(b.path()), &id]);
        rt.ok(&["pause", &id]);
        let paused = (rt.status(&id), rt.listed_status(&id));
        rt.ok(&["resume", &id]);
        let resumed = rt.status(&id);
        rt.ok(&["delete", "--force", &id]);
        seen.push((paused, resumed));
    }
    assert_eq!(
        seen[0],
        (("paused".into(), "paused".into()), "running".into())
    );
    assert_eq!(seen[1], seen[0]);
}

/// Item 13: a container whose init died before `start` reads `stopped`,
/// and a plain `delete` removes it.
#[test]
fn init_dead_before_start_reads_stopped_as_in_runc() {
    let b = bundle(&spec(&["sleep", "100"]));
    let mut seen = Vec::new();
    for rt in Rt::both() {
        let id = id("deadinit");
        rt.ok(&["create", "--bundle", path(b.path()), &id]);
        let pid = rt.state(&id)["pid"].as_i64().unwrap() as i32;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        wait_gone(pid);
        let status = rt.status(&id);
        let refused_start = !rt.run(&["start", &id]).status.success();
        let deleted = rt.run(&["delete", &id]).status.success();
        seen.push((status, refused_start, deleted));
    }
    assert_eq!(seen[0], ("stopped".to_string(), true, true));
    assert_eq!(seen[1], seen[0]);
}

/// Item 14: a config that does not parse is refused with the JSON path,
/// line and column of the bad value and what was expected; like runc's,
/// the error line on stderr says `level=error`.
#[test]
fn a_bad_config_is_refused_naming_path_line_and_column() {
    let b = bundle(&spec(&["true"]));
    let config = b.path().join("config.json");
    let text = std::fs::read_to_string(&config).unwrap();
    let bad = text.replacen("\"CAP_KILL\"", "\"CAP_NOPE\"", 1);
    assert_ne!(bad, text);
    std::fs::write(&config, bad).unwrap();
    for rt in Rt::both() {
        let out = rt.run(&["create", "--bundle", path(b.path()), &id("badcfg")]);
        assert!(!out.status.success(), "{} accepted CAP_NOPE", rt.name());
        let err = stderr(&out);
        assert!(err.contains("level=error"), "{}: {err}", rt.name());
        assert!(err.contains("CAP_NOPE"), "{}: {err}", rt.name());
        if rt.name() == "berth" {
            assert!(err.contains("process.capabilities."), "{err}");
            assert!(err.contains(" line "), "{err}");
            assert!(err.contains(" column "), "{err}");
            assert!(err.contains("expected a capability name"), "{err}");
        }
    }
}

/// Item 14: every CLI error on stderr has the word `error`, in runc's
/// `level=error msg=...` shape.
#[test]
fn cli_errors_say_level_error_as_runc_does() {
    for rt in Rt::both() {
        for args in [
            &["start", "nope"][..],
            &["state", "nope"],
            &["kill", "nope"],
        ] {
            let out = rt.run(args);
            assert_eq!(out.status.code(), Some(1), "{} {args:?}", rt.name());
            let err = stderr(&out);
            let line = err.lines().next().unwrap_or_default();
            assert!(line.starts_with("time=\""), "{} {args:?}: {err}", rt.name());
            assert!(
                line.contains(" level=error msg=\""),
                "{} {args:?}: {err}",
                rt.name()
            );
        }
    }
}

/// Item 15: `checkpoint` and `restore` exist and fail at once, with a
/// clear error, whatever flags a client passes.
#[test]
fn checkpoint_and_restore_fail_at_once_as_unsupported() {
    let [_runc, berth] = Rt::both();
    let b = bundle(&spec(&["sleep", "100"]));
    let id = id("ckpt");
    berth.ok(&["run", "--detach", "--bundle", path(b.path()), &id]);
    let image = tempfile::tempdir().unwrap();
    for args in [
        &[
            "checkpoint",
            "--image-path",
            path(image.path()),
            "--leave-running",
            &id,
        ][..],
        &[
            "restore",
            "--detach",
            "--image-path",
            path(image.path()),
            "--bundle",
            path(b.path()),
            &id,
        ],
    ] {
        let out = berth.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = stderr(&out);
        assert!(err.contains("level=error"), "{err}");
        assert!(err.contains("not supported"), "{err}");
    }
    // Nothing happened to the container.
    assert_eq!(berth.status(&id), "running");
    berth.ok(&["delete", "--force", &id]);
}
