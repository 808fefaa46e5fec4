//! A container seen from a process that did not create it: its exit status
//! is the one its creator records, and `wait` there waits for that record,
//! however late it comes, while the creator lives; a creator that dies
//! without recording ends the wait with an error, not a hang.
//!
//! The creator is this test binary run again (a test marked `ignore`),
//! with a debug fault point that makes its supervisor record each exit
//! 500 ms after the reap: long after the exit is visible from here.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use berth::{Config, ExitStatus, Runtime};
use common::*;

const HELPER_ENV: &str = "BERTH_CROSS_PROCESS_HELPER";

/// Starts the creator: it creates and starts `id` under `root` running
/// `script`, prints `started`, waits for the container and lingers
/// `linger` seconds before exiting.
fn creator(c: &Config, id: &str, script: &str, linger: &str) -> Child {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_creates_starts_and_waits",
            "--ignored",
            "--nocapture",
        ])
        .env(
            HELPER_ENV,
            [
                c.root.to_str().unwrap(),
                &c.cgroup_parent,
                id,
                script,
                linger,
            ]
            .join("|"),
        )
        .env("BERTH_TEST_SABOTAGE", "slow-exit-record")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    lines
        .find_map(|l| l.ok().filter(|l| l.starts_with("started")))
        .expect("the creator started its container");
    // The rest of its output (the harness's), so it never writes to a
    // closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    child
}

/// Not a test of its own: the creating process of the tests below.
#[tokio::test]
#[ignore = "helper process of other tests"]
async fn helper_creates_starts_and_waits() {
    let Ok(arg) = std::env::var(HELPER_ENV) else {
        return;
    };
    let [root, parent, id, script, linger] = arg.splitn(5, '|').collect::<Vec<_>>()[..] else {
        panic!("bad helper argument {arg:?}")
    };
    let rt = Runtime::new({
        let mut config = Config::default();
        config.root = root.into();
        config.cgroup_parent = parent.into();
        config
    })
    .await
    .unwrap();
    let ctr = rt.create(id, bundle(spec(script))).await.unwrap();
    ctr.start().await.unwrap();
    println!("started {}", ctr.pid());
    let _ = ctr.wait().await;
    tokio::time::sleep(std::time::Duration::from_secs_f64(linger.parse().unwrap())).await;
}

#[tokio::test]
async fn another_process_waits_for_the_creators_late_record() {
    let rt = runtime().await;
    let c = rt.config().clone();
    let id = id("late");
    let mut helper = creator(&c, &id, "sleep 0.2; exit 5", "1");
    let ctr = rt.get(&id).await.unwrap();
    // The exit is visible here at once; the record comes 500 ms later.
    assert_eq!(ctr.wait().await.unwrap(), ExitStatus::Exited(5));
    assert!(helper.wait().unwrap().success());
    ctr.delete().await.unwrap();
}

#[tokio::test]
async fn a_creator_killed_before_its_record_ends_the_wait_with_an_error() {
    let rt = runtime().await;
    let c = rt.config().clone();
    let id = id("unrecorded");
    let mut helper = creator(&c, &id, "sleep 0.2; exit 5", "10");
    let ctr = rt.get(&id).await.unwrap();
    let pid = ctr.pid();
    // Gone (reaped by the creator, which records it only 500 ms later).
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    helper.kill().unwrap();
    helper.wait().unwrap();
    let err = ctr.wait().await.unwrap_err();
    assert!(
        matches!(err, berth::Error::ExitStatusUnknown { .. }),
        "unexpected error: {err}"
    );
    ctr.delete().await.unwrap();
}
