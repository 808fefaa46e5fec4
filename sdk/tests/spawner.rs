//! A process holding many descriptors clones through berth's spawner thread,
//! whose descriptor table is its own (see `exec::spawner`). The container
//! still gets exactly the descriptors it was given; inherited stdio is the
//! caller's descriptor as it is now (not as it was when the thread started),
//! on either path, even held close-on-exec; `exec` works the same; no
//! descriptor of the embedder's leaks into a container or out of berth; and
//! a child forked from the process (which has no spawner thread, and none of
//! the supervisors of its parent's containers) still starts containers, and
//! waits for its parent's as another process's. One test in its own binary:
//! the 2,100 descriptors it holds decide the path every clone of the process
//! takes.

mod common;

use std::future::Future;
use std::io::Read;

use berth::{CreateOptions, ExitStatus, Signal, Stdio};
use berth_fixtures::leaks::Snapshot;
use common::*;
use nix::sys::resource::{getrlimit, setrlimit, Resource};

fn threads_named(name: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim_end() == name)
        })
        .count()
}

/// Options with stdin and stderr `/dev/null`, and `stdout`.
fn null_stdio_but_stdout(stdout: Stdio) -> CreateOptions {
    let mut opts = CreateOptions::default();
    opts.stdin = Stdio::Null;
    opts.stdout = stdout;
    opts.stderr = Stdio::Null;
    opts
}

/// What a container `name` that echoes a line to an inherited stdout
/// printed, with this process's fd 1 a close-on-exec pipe while the
/// container is created: an embedder may hold its stdio close-on-exec,
/// and the container still inherits it.
async fn printed_to_inherited_stdout(rt: &TestRuntime, name: &str) -> String {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    let (read_end, write_end) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let saved = nix::unistd::dup(std::io::stdout()).unwrap();
    nix::unistd::dup2_stdout(&write_end).unwrap();
    drop(write_end);
    fcntl(std::io::stdout(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).unwrap();
    let ctr = rt
        .create_with(
            &id(name),
            bundle(spec("echo to-the-callers-stdout")),
            null_stdio_but_stdout(Stdio::Inherit),
        )
        .await;
    nix::unistd::dup2_stdout(&saved).unwrap();
    drop(saved);
    let ctr = ctr.unwrap();
    ctr.start().await.unwrap();
    assert_eq!(ctr.wait().await.unwrap(), ExitStatus::Exited(0));
    ctr.delete().await.unwrap();
    drop(ctr);
    let mut printed = String::new();
    std::fs::File::from(read_end)
        .read_to_string(&mut printed)
        .unwrap();
    printed
}

/// Runs `fut` on a runtime of its own, on a thread of its own (this one
/// is a copy of a tokio worker, on which no other runtime can block);
/// whether it returned true.
fn on_own_runtime(fut: impl Future<Output = berth::Result<bool>> + Send) -> bool {
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(fut)
        })
        .join()
        .is_ok_and(|r| r.is_ok_and(|ok| ok))
    })
}

/// Runs `true` to its exit in a new container `name` of `rt`.
async fn run_true(rt: &TestRuntime, name: &str) -> berth::Result<bool> {
    let opts = null_stdio_but_stdout(Stdio::Null);
    let ctr = rt
        .create_with(&id(name), bundle(spec("true")), opts)
        .await?;
    ctr.start().await?;
    let status = ctr.wait().await?;
    ctr.delete().await?;
    Ok(status == ExitStatus::Exited(0))
}

/// Kills the running container `id` of `rt` and waits for its exit status.
async fn kill_and_wait(rt: &TestRuntime, id: &str) -> berth::Result<bool> {
    let ctr = rt.get(id).await?;
    ctr.kill(Signal::KILL)?;
    Ok(ctr.wait().await? == ExitStatus::Signaled(9))
}

/// Runs `f` in a child forked from this process and returns the child's
/// exit code: 0 if `f` returned true, 1 if false, 2 if it panicked. A child
/// still running after a minute is killed, and the test fails.
fn in_forked_child(f: impl FnOnce() -> bool) -> i32 {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    use nix::unistd::ForkResult;
    // SAFETY: the child only runs `f` (which makes threads and a runtime
    // of its own) and `_exit`s; it never returns into the test harness.
    match unsafe { nix::unistd::fork() }.unwrap() {
        ForkResult::Child => {
            let code = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
                Ok(true) => 0,
                Ok(false) => 1,
                Err(_) => 2,
            };
            // SAFETY: ends the forked child without running the parent's
            // exit handlers or destructors a second time.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            for _ in 0..1200 {
                match waitpid(child, Some(WaitPidFlag::WNOHANG)).unwrap() {
                    WaitStatus::Exited(_, code) => return code,
                    WaitStatus::StillAlive => {
                        std::thread::sleep(std::time::Duration::from_millis(50))
                    }
                    other => panic!("the forked child ended: {other:?}"),
                }
            }
            let _ = nix::sys::signal::kill(child, nix::sys::signal::SIGKILL);
            let _ = waitpid(child, None);
            panic!("the forked child was still running after a minute");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_holding_many_descriptors_clones_from_the_spawner_thread() {
    // More than the spawner's threshold (2,048), the limit raised for them
    // as a server embedding berth would.
    let n = 2100;
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    assert!(
        hard >= 2400,
        "the hard descriptor limit ({hard}) is below 2400"
    );
    setrlimit(Resource::RLIMIT_NOFILE, 2400, hard).unwrap();
    let rt = runtime().await;
    // With few descriptors open the calling thread clones; the two paths
    // give an inheriting container the same stdout.
    assert_eq!(
        printed_to_inherited_stdout(&rt, "inherit-direct").await,
        "to-the-callers-stdout\n"
    );
    assert_eq!(threads_named("berth-spawner"), 0, "a spawner thread");
    let ballast: Vec<std::fs::File> = (0..n)
        .map(|_| std::fs::File::open("/dev/null").unwrap())
        .collect();
    {
        // Passed descriptors arrive at 3, 4, … and nothing else does.
        let (_dir, mut fds) = numbered_files(3);
        fds.reverse();
        let ctr = create_piped_with_fds(&rt, "spawner", spec(&fds_report(3)), fds)
            .await
            .unwrap();
        assert_eq!(threads_named("berth-spawner"), 1, "no spawner thread");
        ctr.start().await.unwrap();
        let out = finish(ctr).await.unwrap();
        assert_eq!(out.status, ExitStatus::Exited(0), "{out:?}");
        assert_eq!(out.stdout, expected_fds(&[2, 1, 0]), "{out:?}");

        // From here on the thread and its socket exist: a lifecycle leaves
        // the process with the descriptors it had.
        let c = rt.config().clone();
        let before = Snapshot::take(&c.root, &c.cgroup_parent).unwrap();

        // Inherited stdout is the caller's fd 1 as it is now: a pipe put
        // there after the spawner thread started.
        assert_eq!(
            printed_to_inherited_stdout(&rt, "inherit-spawner").await,
            "to-the-callers-stdout\n"
        );

        // A process started in a running container (joins its namespaces,
        // pid namespace included) gets its descriptors the same way.
        let ctr = sleeping(&rt, "spawner-exec").await;
        let (_dir, mut fds) = numbered_files(2);
        fds.swap(0, 1);
        let stdout = exec_fds_report(&ctr, fds).await;
        assert_eq!(stdout, expected_fds(&[1, 0]));
        ctr.force_delete().await.unwrap();
        drop(ctr);

        // A child forked from this process (a daemon forking a worker) has
        // the spawner's handle but not its thread: its creates clone on its
        // own thread and do not wait for one that is not there.
        assert_eq!(
            in_forked_child(|| on_own_runtime(run_true(&rt, "forked"))),
            0,
            "a create in a forked child"
        );
        // Nor does it take its parent's supervisors for its own: one of
        // the parent's containers, killed from the child, is waited for as
        // another process's (the parent records the status).
        let parents = sleeping(&rt, "parents").await;
        assert_eq!(
            in_forked_child(|| on_own_runtime(kill_and_wait(&rt, parents.id()))),
            0,
            "a wait in a forked child"
        );
        assert_eq!(parents.wait().await.unwrap(), ExitStatus::Signaled(9));
        parents.delete().await.unwrap();
        drop(parents);

        let leaks = Snapshot::take(&c.root, &c.cgroup_parent)
            .unwrap()
            .leaks_since(&before);
        assert!(leaks.is_empty(), "leaked:\n{}", leaks.join("\n"));
        assert_eq!(threads_named("berth-spawner"), 1);
    }
    drop(ballast);
}
