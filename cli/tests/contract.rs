//! The embedding contract through the `berth` binary, across processes:
//! state transitions happen exactly once under the container's lock, and a
//! `create` killed at any instant leaves something `list` shows (or
//! nothing), which `delete --force` removes completely. Run as root.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use berth::oci_spec::runtime::{HookBuilder, HooksBuilder, MountBuilder};
use serde_json::Value;

const BERTH: &str = env!("CARGO_BIN_EXE_berth");

/// A state root of the test's own, checked empty and removed at the end.
struct Root(PathBuf);

impl Root {
    fn new() -> Root {
        berth_fixtures::require_root();
        static N: AtomicUsize = AtomicUsize::new(0);
        Root(PathBuf::from(format!(
            "/run/berth-contract-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        )))
    }

    fn command(&self, args: &[&str]) -> (Command, std::fs::File, std::fs::File) {
        let out = tempfile::tempfile().unwrap();
        let err = tempfile::tempfile().unwrap();
        let mut cmd = Command::new(BERTH);
        cmd.arg("--root")
            .arg(&self.0)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(err.try_clone().unwrap());
        (cmd, out, err)
    }

    /// Runs berth with output in files (a container left behind inherits
    /// them; a pipe would keep the reader waiting).
    fn berth(&self, args: &[&str]) -> Output {
        let (mut cmd, out, err) = self.command(args);
        let status = cmd.status().expect("run berth");
        Output {
            status,
            stdout: read(out),
            stderr: read(err),
        }
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.berth(args);
        assert!(
            out.status.success(),
            "berth {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn list(&self) -> Vec<Value> {
        serde_json::from_str(&self.ok(&["list", "--format", "json"])).unwrap()
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let left: Vec<_> = std::fs::read_dir(&self.0)
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        let _ = std::fs::remove_dir(&self.0);
        if !std::thread::panicking() {
            assert!(left.is_empty(), "containers left behind: {left:?}");
        }
    }
}

fn read(mut f: std::fs::File) -> Vec<u8> {
    let mut v = Vec::new();
    f.seek(SeekFrom::Start(0)).unwrap();
    f.read_to_end(&mut v).unwrap();
    v
}

fn id(name: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn spec(args: &[&str]) -> berth::oci_spec::runtime::Spec {
    let mut spec =
        berth_fixtures::bundle::spec(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    let mut root = spec.root().clone().unwrap();
    root.set_path(berth_fixtures::rootfs::shared().unwrap());
    spec.set_root(Some(root));
    spec
}

/// Processes on the host whose command line contains `marker` (berth's own
/// processes aside).
fn processes_with(marker: &str) -> Vec<i32> {
    processes_matching(|cmd| cmd.contains(marker) && !cmd.contains("berth"))
}

/// Processes on the host whose command line (NULs as spaces) satisfies `f`.
fn processes_matching(f: impl Fn(&str) -> bool) -> Vec<i32> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if f(&cmd) {
                found.push(pid);
            }
        }
    }
    found
}

/// The cgroup directories of container `id` (default parent `berth`).
fn cgroups_of(id: &str) -> Vec<PathBuf> {
    berth_fixtures::leaks::Snapshot::take(Path::new("/nonexistent"), &format!("berth/{id}"))
        .unwrap()
        .cgroups
        .into_iter()
        .collect()
}

fn lines(p: &Path) -> usize {
    std::fs::read_to_string(p).map_or(0, |t| t.lines().count())
}

/// Eight `berth start`s race on one created container: one starts it and
/// the startContainer and poststart hooks run once; then six updates race
/// a pause and a resume (the kernel's limit is the saved one); then eight
/// processes race start, pause, resume, kill and delete --force: the
/// container ends deleted, its process dead, nothing left, and no hook ran
/// again.
#[test]
fn racing_processes_run_hooks_exactly_once() {
    let root = Root::new();
    let bundle = tempfile::tempdir().unwrap();
    let log = tempfile::tempdir().unwrap();
    let mut s = spec(&["sleep", "1000"]);
    let mut mounts = s.mounts().clone().unwrap();
    mounts.push(
        MountBuilder::default()
            .destination("/hooklog")
            .typ("bind")
            .source(log.path())
            .options(vec!["rbind".into(), "rw".into()])
            .build()
            .unwrap(),
    );
    s.set_mounts(Some(mounts));
    let hook = |script: String| {
        HookBuilder::default()
            .path("/bin/sh")
            .args(vec!["sh".into(), "-c".into(), script])
            .build()
            .unwrap()
    };
    let poststart = log.path().join("poststart");
    s.set_hooks(Some(
        HooksBuilder::default()
            // In the container's namespaces: its view of the log directory.
            .start_container(vec![hook("echo s >> /hooklog/start".into())])
            .poststart(vec![hook(format!("echo p >> {}", poststart.display()))])
            .build()
            .unwrap(),
    ));
    berth_fixtures::bundle::write_config(bundle.path(), &s).unwrap();
    let id = id("race");
    let bundle_path = bundle.path().to_str().unwrap();
    root.ok(&["create", "--bundle", bundle_path, &id]);
    let state: Value = serde_json::from_str(&root.ok(&["state", &id])).unwrap();
    let pid = state["pid"].as_i64().unwrap() as i32;

    let race = |ops: &[&[&str]]| -> Vec<Output> {
        let children: Vec<_> = ops
            .iter()
            .map(|op| {
                let mut args = op.to_vec();
                args.push(&id);
                let (mut cmd, out, err) = root.command(&args);
                (cmd.spawn().unwrap(), out, err)
            })
            .collect();
        children
            .into_iter()
            .map(|(mut c, out, err)| Output {
                status: c.wait().unwrap(),
                stdout: read(out),
                stderr: read(err),
            })
            .collect()
    };

    let start: &[&str] = &["start"];
    let starts = race(&[start; 8]);
    let won = starts.iter().filter(|o| o.status.success()).count();
    let errors: Vec<_> = starts
        .iter()
        .filter(|o| !o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
        .collect();
    assert_eq!(won, 1, "{errors:#?}");
    assert_eq!(lines(&log.path().join("start")), 1);
    assert_eq!(lines(&poststart), 1);
    let state: Value = serde_json::from_str(&root.ok(&["state", &id])).unwrap();
    assert_eq!(state["status"], "running");
    assert!(Path::new(&format!("/proc/{pid}")).exists());

    // Six updates and a pause and a resume race: every update applies,
    // and the limit the kernel holds is the one the saved spec records
    // (whichever update came last), never a mix.
    let limits = ["101", "102", "103", "104", "105", "106"];
    let mut ops: Vec<Vec<&str>> = limits
        .iter()
        .map(|l| vec!["update", "--pids-limit", l])
        .collect();
    ops.extend([vec!["pause"], vec!["resume"]]);
    let ops: Vec<&[&str]> = ops.iter().map(Vec::as_slice).collect();
    let outs = race(&ops);
    for o in &outs[..limits.len()] {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let pids_max = cgroups_of(&id)
        .into_iter()
        .map(|d| d.join("pids.max"))
        .find(|f| f.exists())
        .expect("the container's pids cgroup");
    let kernel = std::fs::read_to_string(&pids_max).unwrap();
    let saved: Value = serde_json::from_str(
        &std::fs::read_to_string(root.0.join(&id).join("config.json")).unwrap(),
    )
    .unwrap();
    let recorded = saved["linux"]["resources"]["pids"]["limit"].to_string();
    assert_eq!(
        kernel.trim(),
        recorded,
        "the kernel and the saved spec disagree"
    );
    assert!(limits.contains(&recorded.as_str()), "{recorded}");
    eprintln!("after the update race: pids.max {recorded}");
    // Paused or running, as the last of pause and resume left it.
    let state: Value = serde_json::from_str(&root.ok(&["state", &id])).unwrap();
    assert!(
        matches!(state["status"].as_str(), Some("running" | "paused")),
        "{state}"
    );

    race(&[
        &["start"],
        &["pause"],
        &["resume"],
        &["kill"],
        &["pause"],
        &["resume"],
        &["delete", "--force"],
        &["delete", "--force"],
    ]);
    // Whatever order they ran in, a delete --force came last or the
    // container is still there for this one.
    root.ok(&["delete", "--force", &id]);
    assert_eq!(lines(&log.path().join("start")), 1);
    assert_eq!(lines(&poststart), 1);
    assert!(!root.0.join(&id).exists());
    assert!(cgroups_of(&id).is_empty(), "{:?}", cgroups_of(&id));
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"));
    assert!(
        stat.is_err() || stat.unwrap().contains(") Z"),
        "the container's process outlived its delete"
    );
}

/// `berth create` SIGKILLed at 24 instants (0 to 46 ms after it starts):
/// each time `list` shows the container or its state directory is gone,
/// and `delete --force` leaves no state, cgroup, process or host mount.
#[test]
fn create_killed_at_any_instant_is_listed_and_removed_completely() {
    let root = Root::new();
    let host_mounts = || {
        std::fs::read_to_string("/proc/1/mountinfo")
            .unwrap()
            .lines()
            .count()
    };
    let mounts_before = host_mounts();
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    for step in 0..24u64 {
        let delay = Duration::from_millis(step * 2);
        let marker = format!("{}{step:02}", 7_000_000 + std::process::id() % 1_000_000);
        let bundle = tempfile::tempdir().unwrap();
        berth_fixtures::bundle::write_config(bundle.path(), &spec(&["sleep", &marker])).unwrap();
        let id = id("killed");
        let (mut cmd, _out, _err) =
            root.command(&["create", "--bundle", bundle.path().to_str().unwrap(), &id]);
        let mut child = cmd.spawn().unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let _ = child.wait();

        let dir_exists = root.0.join(&id).exists();
        let listed: Vec<Value> = root
            .list()
            .into_iter()
            .filter(|v| v["id"] == id.as_str())
            .collect();
        let status = listed.first().map_or("gone".to_string(), |v| {
            v["status"].as_str().unwrap().to_string()
        });
        assert!(
            !dir_exists || !listed.is_empty(),
            "after {delay:?}: a state directory that list does not show"
        );
        *outcomes.entry(status).or_default() += 1;

        root.ok(&["delete", "--force", &id]);
        assert!(!root.0.join(&id).exists(), "after {delay:?}: state left");
        assert!(
            cgroups_of(&id).is_empty(),
            "after {delay:?}: cgroups left: {:?}",
            cgroups_of(&id)
        );
        let procs = processes_with(&marker);
        assert!(
            procs.is_empty(),
            "after {delay:?}: processes left: {procs:?}"
        );
        let hidden: Vec<_> = std::fs::read_dir(&root.0)
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(
            hidden.is_empty(),
            "after {delay:?}: {hidden:?} left in the root"
        );
    }
    assert_eq!(host_mounts(), mounts_before, "host mounts changed");
    println!("outcomes by status seen in list: {outcomes:?}");
}

/// `berth start` and `berth delete --force` SIGKILLed at 20 instants each
/// (0 to 38 ms after they start): each time `list` shows the container or
/// it is gone, and a `delete --force` then leaves no state, cgroup or
/// process.
#[test]
fn start_and_delete_killed_at_any_instant_leave_nothing_after_delete() {
    let root = Root::new();
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    for (verb, step) in (0..20u64)
        .map(|s| ("start", s))
        .chain((0..20u64).map(|s| ("delete", s)))
    {
        let delay = Duration::from_millis(step * 2);
        let marker = format!(
            "{}{step:02}{}",
            8_000_000 + std::process::id() % 1_000_000,
            verb.len()
        );
        let bundle = tempfile::tempdir().unwrap();
        berth_fixtures::bundle::write_config(bundle.path(), &spec(&["sleep", &marker])).unwrap();
        let id = id(verb);
        root.ok(&["create", "--bundle", bundle.path().to_str().unwrap(), &id]);
        if verb == "delete" {
            root.ok(&["start", &id]);
        }
        let args: &[&str] = if verb == "start" {
            &["start"]
        } else {
            &["delete", "--force"]
        };
        let mut args = args.to_vec();
        args.push(&id);
        let (mut cmd, _out, _err) = root.command(&args);
        let mut child = cmd.spawn().unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let _ = child.wait();

        let listed: Vec<Value> = root
            .list()
            .into_iter()
            .filter(|v| v["id"] == id.as_str())
            .collect();
        let status = listed.first().map_or("gone".to_string(), |v| {
            v["status"].as_str().unwrap().to_string()
        });
        assert!(
            !root.0.join(&id).join("state.json").exists() || !listed.is_empty(),
            "{verb} killed after {delay:?}: a state that list does not show"
        );
        *outcomes.entry(format!("{verb}: {status}")).or_default() += 1;

        root.ok(&["delete", "--force", &id]);
        assert!(
            !root.0.join(&id).exists(),
            "{verb} after {delay:?}: state left"
        );
        assert!(
            cgroups_of(&id).is_empty(),
            "{verb} after {delay:?}: cgroups left"
        );
        let procs = processes_with(&marker);
        assert!(
            procs.is_empty(),
            "{verb} after {delay:?}: processes left: {procs:?}"
        );
    }
    println!("outcomes by status seen in list: {outcomes:?}");
}

/// The shim of a detached container (`berth shim`, started by the SDK)
/// SIGKILLed at 20 instants (0 to 38 ms after the create begins): each
/// time `list` shows the container or it is gone, and `delete` with
/// `force` leaves no state, cgroup or process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shim_killed_at_any_instant_leaves_nothing_after_delete() {
    berth_fixtures::require_root();
    let name = format!("berth-contract-shim-{}", std::process::id());
    let config = {
        let mut config = berth::Config::default();
        config.root = PathBuf::from("/run").join(&name);
        config.cgroup_parent = name.clone();
        config.shim = Some(BERTH.into());
        config
    };
    let rt = berth::Runtime::new(config.clone()).await.unwrap();
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    for step in 0..20u64 {
        let marker = format!("{}{step:02}", 9_000_000 + std::process::id() % 1_000_000);
        let id = id("shim");
        let bundle = berth::Bundle::new(std::env::temp_dir(), spec(&["sleep", &marker])).unwrap();
        let mut opts = berth::CreateOptions::default();
        opts.stdin = berth::Stdio::Null;
        opts.stdout = berth::Stdio::Null;
        opts.stderr = berth::Stdio::Null;
        opts.detached = true;
        let creating = {
            let (rt, id) = (rt.clone(), id.clone());
            tokio::spawn(async move { rt.create_with(&id, bundle, opts).await })
        };
        tokio::time::sleep(Duration::from_millis(step * 2)).await;
        let request = format!("{}/.{id}.shim-request", config.root.display());
        let shims = processes_matching(|cmd| cmd.contains(" shim ") && cmd.contains(&request));
        let shim = shims.first().copied();
        if let Some(pid) = shim {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let created = creating.await.unwrap();
        let listed = rt.list().await.unwrap();
        let status = listed
            .iter()
            .find(|s| s.id() == id.as_str())
            .map_or("gone".to_string(), |s| s.status().to_string());
        assert!(
            !config.root.join(&id).exists() || status != "gone",
            "shim killed after {step}: a state directory that list does not show"
        );
        let shim_state = match (shim, &created) {
            (None, _) => "shim already gone",
            (Some(_), Ok(_)) => "created",
            (Some(_), Err(_)) => "create failed",
        };
        *outcomes
            .entry(format!("{shim_state}: {status}"))
            .or_default() += 1;
        if let Ok(c) = rt.get(&id).await {
            c.force_delete().await.unwrap();
        }
        assert!(
            !config.root.join(&id).exists(),
            "shim killed after {step}: state left"
        );
        let cgroups = berth_fixtures::leaks::Snapshot::take(&config.root, &format!("{name}/{id}"))
            .unwrap()
            .cgroups;
        assert!(
            cgroups.is_empty(),
            "shim killed after {step}: cgroups left: {cgroups:?}"
        );
        let procs = processes_with(&marker);
        assert!(
            procs.is_empty(),
            "shim killed after {step}: processes left: {procs:?}"
        );
    }
    let _ = std::fs::remove_dir_all(config.root.join("network"));
    let left: Vec<_> = std::fs::read_dir(&config.root)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    let _ = std::fs::remove_dir(&config.root);
    assert!(left.is_empty(), "left in the root: {left:?}");
    let parent = berth::cgroups::Cgroup::open(&name).unwrap();
    parent.delete().await.unwrap();
    println!("outcomes: {outcomes:?}");
}
