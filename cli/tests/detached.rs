//! Detached mode: a shim (`berth shim`) parents the container, so it
//! outlives the SDK process that created it, and any process that
//! re-attaches learns its exit status.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use berth::{Bundle, Config, CreateOptions, ExitStatus, Runtime, Status};

mod support;

const BERTH: &str = env!("CARGO_BIN_EXE_berth");
const HELPER_ENV: &str = "BERTH_DETACHED_HELPER";

fn config(tag: &str) -> Config {
    let name = format!("berth-detached-{tag}-{}", std::process::id());
    {
        let mut config = Config::default();
        config.root = PathBuf::from("/run").join(&name);
        config.cgroup_parent = name;
        config.shim = Some(BERTH.into());
        config
    }
}

fn bundle(script: &str) -> Bundle {
    let mut spec = berth_fixtures::bundle::spec(&["sh".into(), "-c".into(), script.into()]);
    let mut root = spec.root().clone().unwrap();
    root.set_path(berth_fixtures::rootfs::shared().unwrap());
    spec.set_root(Some(root));
    Bundle::new(std::env::temp_dir(), spec).unwrap()
}

fn detached() -> CreateOptions {
    {
        let mut create_options = CreateOptions::default();
        create_options.stdin = berth::Stdio::Null;
        create_options.stdout = berth::Stdio::Null;
        create_options.stderr = berth::Stdio::Null;
        create_options.detached = true;
        create_options
    }
}

fn assert_clean(c: &Config) {
    let left = std::fs::read_dir(&c.root).map(|d| d.count()).unwrap_or(0);
    let _ = std::fs::remove_dir(&c.root);
    assert_eq!(left, 0, "state left under {}", c.root.display());
    let cgroups = berth_fixtures::leaks::Snapshot::take(&c.root, &c.cgroup_parent)
        .unwrap()
        .cgroups;
    assert!(cgroups.is_empty(), "cgroups left: {cgroups:?}");
}

/// Not a test of its own: the process that creates a detached container
/// and is then killed by `the_exit_status_survives_the_sdk_process`.
#[tokio::test]
#[ignore = "helper process of another test"]
async fn helper_creates_and_waits_to_be_killed() {
    let Ok(arg) = std::env::var(HELPER_ENV) else {
        return;
    };
    let (root, id) = arg.split_once('|').unwrap();
    let mut c = config(id);
    c.root = root.into();
    let c = {
        let mut config = c;
        config.cgroup_parent = format!("berth-detached-{}", id);
        config
    };
    let rt = Runtime::new(c).await.unwrap();
    let ctr = rt
        .create_with(id, bundle("sleep 2; exit 7"), detached())
        .await
        .unwrap();
    ctr.start().await.unwrap();
    println!("started {}", ctr.pid());
    std::future::pending::<()>().await;
}

#[tokio::test]
async fn the_exit_status_survives_the_sdk_process() {
    berth_fixtures::require_root();
    let id = format!("survivor-{}", std::process::id());
    let mut c = config("survivor");
    c.cgroup_parent = format!("berth-detached-{id}");
    let mut helper = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_creates_and_waits_to_be_killed",
            "--ignored",
            "--nocapture",
        ])
        .env(HELPER_ENV, format!("{}|{id}", c.root.display()))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(helper.stdout.take().unwrap()).lines();
    let started = lines
        .find_map(|l| l.ok().filter(|l| l.starts_with("started")))
        .expect("helper started the container");
    let pid: i32 = started.split_whitespace().nth(1).unwrap().parse().unwrap();
    helper.kill().unwrap();
    helper.wait().unwrap();

    // The container lives on, and a new process can await its end.
    let rt = Runtime::new(c.clone()).await.unwrap();
    let ctr = rt.get(&id).await.unwrap();
    assert_eq!(ctr.pid(), pid);
    assert_eq!(
        ctr.status().await.unwrap(),
        Status::Running,
        "the container died with its creator"
    );
    assert_eq!(ctr.wait().await.unwrap(), ExitStatus::Exited(7));
    assert_eq!(ctr.status().await.unwrap(), Status::Stopped);
    ctr.delete().await.unwrap();
    assert_clean(&c);
}

#[tokio::test]
async fn the_creating_process_gets_the_exit_status_too() {
    berth_fixtures::require_root();
    let c = config("own");
    let rt = Runtime::new(c.clone()).await.unwrap();
    let id = format!("own-{}", std::process::id());
    let ctr = rt
        .create_with(&id, bundle("exit 3"), detached())
        .await
        .unwrap();
    // The container's parent is the shim, not this process.
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", ctr.pid())).unwrap();
    let ppid: u32 = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(ppid, std::process::id());
    ctr.start().await.unwrap();
    assert_eq!(ctr.wait().await.unwrap(), ExitStatus::Exited(3));
    ctr.delete().await.unwrap();
    assert_clean(&c);
}

#[tokio::test]
async fn killing_the_shim_leaves_state_readable_and_delete_cleans() {
    berth_fixtures::require_root();
    let c = config("shimkill");
    let rt = Runtime::new(c.clone()).await.unwrap();
    let id = format!("shimkill-{}", std::process::id());
    let ctr = rt
        .create_with(&id, bundle("sleep 100"), detached())
        .await
        .unwrap();
    ctr.start().await.unwrap();
    let shim = support::shim_pid(&ctr);
    Command::new("kill")
        .args(["-9", &shim.to_string()])
        .status()
        .unwrap();
    let again = rt.get(&id).await.unwrap();
    assert_eq!(again.status().await.unwrap(), Status::Running);
    assert_eq!(again.state().await.unwrap().id(), &id);
    again.force_delete().await.unwrap();
    // Gone, or a zombie waiting for the machine's init (its new parent).
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", ctr.pid())).unwrap_or_default();
    let state = stat
        .rsplit(')')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .next();
    assert!(
        matches!(state, None | Some("Z") | Some("X")),
        "still running: {stat}"
    );
    assert_clean(&c);
}

#[tokio::test]
async fn a_bad_spec_is_refused_before_any_shim() {
    berth_fixtures::require_root();
    let c = config("badspec");
    let rt = Runtime::new(c.clone()).await.unwrap();
    let mut b = bundle("true");
    b.spec
        .process_mut()
        .as_mut()
        .unwrap()
        .set_cwd("relative".into());
    let e = rt.create_with("bad", b, detached()).await.unwrap_err();
    assert!(matches!(e, berth::Error::InvalidSpec { .. }), "{e}");
    // A failure inside the shim comes back as its message.
    let mut b = bundle("true");
    b.spec
        .process_mut()
        .as_mut()
        .unwrap()
        .set_args(Some(vec!["/no/such/program".into()]));
    let e = rt.create_with("bad", b, detached()).await.unwrap_err();
    assert!(e.to_string().contains("/no/such/program"), "{e}");
    assert_clean(&c);
}

/// Descriptors passed to a detached container go through the shim to the
/// container's 3, 4, …, in order; the shim keeps no copy (the pipes see
/// EOF once the container is gone).
#[tokio::test]
async fn a_detached_container_gets_the_passed_descriptors() {
    use std::io::Read;
    berth_fixtures::require_root();
    let c = config("fds");
    let rt = Runtime::new(c.clone()).await.unwrap();
    let (r3, w3) = nix::unistd::pipe().unwrap();
    let (r4, w4) = nix::unistd::pipe().unwrap();
    let (mut r3, mut r4) = (std::fs::File::from(r3), std::fs::File::from(r4));
    let mut opts = detached();
    opts.pass_fds = vec![w3, w4];
    let id = format!("fds-{}", std::process::id());
    let ctr = rt
        .create_with(&id, bundle("echo three >&3; echo four >&4"), opts)
        .await
        .unwrap();
    ctr.start().await.unwrap();
    assert_eq!(ctr.wait().await.unwrap(), ExitStatus::Exited(0));
    let (mut a, mut b) = (String::new(), String::new());
    r3.read_to_string(&mut a).unwrap();
    r4.read_to_string(&mut b).unwrap();
    assert_eq!((a.as_str(), b.as_str()), ("three\n", "four\n"));
    ctr.delete().await.unwrap();
    assert_clean(&c);
}
