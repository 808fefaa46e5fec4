//! The TTRPC Task service containerd calls: one shim serves every task of
//! its group (one container, or the containers of a pod).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;
use containerd_shim::api::{CheckpointTaskRequest, DeleteResponse};
use containerd_shim::api::{
    CloseIORequest, ConnectRequest, ConnectResponse, CreateTaskRequest, CreateTaskResponse,
    DeleteRequest, Empty, ExecProcessRequest, KillRequest, PauseRequest, PidsRequest, PidsResponse,
    ResizePtyRequest, ResumeRequest, ShutdownRequest, StartRequest, StartResponse, StateRequest,
    StateResponse, StatsRequest, StatsResponse, Status as ApiStatus, UpdateTaskRequest,
    WaitRequest, WaitResponse,
};
use containerd_shim::asynchronous::ExitSignal;
use containerd_shim::event::Event;
use containerd_shim::protos::api::ProcessInfo;
use containerd_shim::protos::events::task::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskIO, TaskOOM, TaskPaused,
    TaskResumed, TaskStart,
};
use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim::protos::protobuf::MessageField;
use containerd_shim::{TtrpcContext, TtrpcResult};
use futures::StreamExt;
use oci_spec::runtime::{LinuxResources, Process};
use tokio::sync::watch;

use crate::containers::{self, Container, ExecProcess, Exit, Runtime, Status};
use crate::error::{Error, Result};
use crate::events::Publisher;
use crate::io::{Paths, ProcIo};
use crate::options::RuntimeOptions;

/// How long an exit waits for the process's terminal output to be copied.
const DRAIN_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// How and when a process ended.
#[derive(Debug, Clone, Copy)]
struct Exited {
    code: u32,
    at: SystemTime,
}

fn timestamp(t: SystemTime) -> Timestamp {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    Timestamp {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
        ..Default::default()
    }
}

/// One process of a task (its first process or an exec'd one).
#[derive(Debug)]
struct Proc {
    pid: AtomicU32,
    paths: Paths,
    io: Mutex<Arc<ProcIo>>,
    exit: watch::Sender<Option<Exited>>,
}

impl Proc {
    fn new(paths: Paths) -> Arc<Proc> {
        Arc::new(Proc {
            pid: AtomicU32::new(0),
            paths,
            io: Mutex::new(Arc::new(ProcIo::default())),
            exit: watch::channel(None).0,
        })
    }

    fn pid(&self) -> u32 {
        self.pid.load(Ordering::SeqCst)
    }

    fn io(&self) -> Arc<ProcIo> {
        self.io.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set_io(&self, io: ProcIo) {
        *self.io.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(io);
    }

    fn exited(&self) -> Option<Exited> {
        *self.exit.borrow()
    }

    async fn wait(&self) -> Exited {
        let mut rx = self.exit.subscribe();
        loop {
            if let Some(e) = *rx.borrow_and_update() {
                return e;
            }
            if rx.changed().await.is_err() {
                // The sender lives as long as `self`.
                continue;
            }
        }
    }
}

/// An exec'd process: registered by `Exec`, started by `Start`.
#[derive(Debug)]
struct ExecEntry {
    spec: Process,
    proc: Arc<Proc>,
    handle: Mutex<Option<Arc<ExecProcess>>>,
}

/// One container.
#[derive(Debug)]
struct Task {
    id: String,
    bundle: PathBuf,
    rootfs: Option<PathBuf>,
    ctr: Container,
    init: Arc<Proc>,
    /// Held by `Start` while it starts and announces; the exit is announced
    /// only after it, so TaskExit never precedes TaskStart.
    start_lock: tokio::sync::Mutex<()>,
    execs: Mutex<HashMap<String, Arc<ExecEntry>>>,
}

impl Task {
    fn exec(&self, id: &str) -> Result<Arc<ExecEntry>> {
        self.execs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("process {id}")))
    }

    fn proc(&self, exec_id: &str) -> Result<Arc<Proc>> {
        if exec_id.is_empty() {
            Ok(self.init.clone())
        } else {
            Ok(self.exec(exec_id)?.proc.clone())
        }
    }
}

/// The state the service shares with its background tasks.
struct Shared {
    namespace: String,
    publisher: Publisher,
    exit: Arc<ExitSignal>,
    tasks: Mutex<HashMap<String, Arc<Task>>>,
    runtimes: tokio::sync::Mutex<HashMap<PathBuf, Runtime>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

/// The Task service.
#[derive(Debug, Clone)]
pub struct Service {
    shared: Arc<Shared>,
}

impl Shared {
    async fn publish(&self, event: impl Event) {
        self.publisher.publish(event).await;
    }

    fn task(&self, id: &str) -> Result<Arc<Task>> {
        self.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("task {id}")))
    }

    async fn runtime(&self, opts: &RuntimeOptions) -> Result<Runtime> {
        let root = opts.root_for(&self.namespace);
        let mut rts = self.runtimes.lock().await;
        if let Some(rt) = rts.get(&root) {
            return Ok(rt.clone());
        }
        let rt = containers::runtime(&root, opts.cgroup_parent.as_deref()).await?;
        rts.insert(root, rt.clone());
        Ok(rt)
    }

    /// Records a process's exit once its output is drained, and announces
    /// it.
    async fn exited(&self, task: &Task, exec_id: &str, proc: &Proc, exit: Exit) {
        // A process that left a child holding its terminal would keep the
        // copy going: the exit is not held back for that longer than this.
        let drained = tokio::time::timeout(DRAIN_LIMIT, proc.io().drain()).await;
        if drained.is_err() {
            log::warn!("{}: output still open after the exit", task.id);
        }
        let exited = Exited {
            code: exit.code,
            at: SystemTime::now(),
        };
        // containerd has the event before a waiter can see the exit (and
        // delete the task, whose TaskDelete must come after it).
        self.publish(TaskExit {
            container_id: task.id.clone(),
            id: if exec_id.is_empty() {
                task.id.clone()
            } else {
                exec_id.to_string()
            },
            pid: proc.pid(),
            exit_status: exited.code,
            exited_at: MessageField::some(timestamp(exited.at)),
            ..Default::default()
        })
        .await;
        proc.exit.send_replace(Some(exited));
    }
}

impl Service {
    /// A service publishing events of `namespace` to containerd at
    /// `events_address`, that raises `exit` once its last task is gone and
    /// containerd asks it to shut down.
    pub fn new(namespace: &str, events_address: &str, exit: Arc<ExitSignal>) -> Service {
        Service {
            shared: Arc::new(Shared {
                namespace: namespace.to_string(),
                publisher: Publisher::new(events_address, namespace),
                exit,
                tasks: Mutex::new(HashMap::new()),
                runtimes: tokio::sync::Mutex::new(HashMap::new()),
            }),
        }
    }

    async fn do_create(&self, req: CreateTaskRequest) -> Result<CreateTaskResponse> {
        let sh = &self.shared;
        if !req.checkpoint.is_empty() {
            return Err(Error::Unimplemented("restore from a checkpoint"));
        }
        if sh.task(&req.id).is_ok() {
            return Err(Error::AlreadyExists(format!("task {}", req.id)));
        }
        let bundle = PathBuf::from(&req.bundle);
        let opts = RuntimeOptions::from_any(req.options.as_ref())?;
        opts.save(&bundle)?;
        let seccomp = opts.seccomp()?;
        let rt = sh.runtime(&opts).await?;

        let rootfs = if req.rootfs.is_empty() {
            None
        } else {
            let target = bundle.join("rootfs");
            std::fs::create_dir_all(&target).map_err(|e| Error::io("create", &target, e))?;
            for m in &req.rootfs {
                if let Err(e) = containerd_shim::util::mount_rootfs(m, &target).await {
                    unmount(&target);
                    return Err(e.into());
                }
            }
            Some(target)
        };
        let paths = Paths {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        };
        let made = async {
            let streams = crate::io::streams(&paths)?;
            containers::create(&rt, &req.id, &bundle, seccomp, streams).await
        }
        .await;
        let ctr = match made {
            Ok(c) => c,
            Err(e) => {
                if let Some(r) = &rootfs {
                    unmount(r);
                }
                return Err(e);
            }
        };
        let init = Proc::new(paths.clone());
        init.pid.store(containers::pid(&ctr), Ordering::SeqCst);
        let io = if req.terminal {
            match containers::take_pty(&ctr) {
                Some(master) => ProcIo::attach_pty(master, &paths),
                None => Err(Error::FailedPrecondition(
                    "a terminal was asked for, but the spec has no process.terminal".into(),
                )),
            }
        } else {
            Ok(ProcIo::attach_pipes(containers::take_stdin(&ctr), &paths))
        };
        match io {
            Ok(io) => init.set_io(io),
            Err(e) => {
                let _ = containers::delete(&ctr, true).await;
                if let Some(r) = &rootfs {
                    unmount(r);
                }
                return Err(e);
            }
        }
        let task = Arc::new(Task {
            id: req.id.clone(),
            bundle,
            rootfs,
            ctr,
            init: init.clone(),
            start_lock: tokio::sync::Mutex::new(()),
            execs: Mutex::new(HashMap::new()),
        });
        sh.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(req.id.clone(), task.clone());
        sh.publish(TaskCreate {
            container_id: req.id.clone(),
            bundle: req.bundle.clone(),
            rootfs: req.rootfs.clone(),
            io: MessageField::some(TaskIO {
                stdin: req.stdin.clone(),
                stdout: req.stdout.clone(),
                stderr: req.stderr.clone(),
                terminal: req.terminal,
                ..Default::default()
            }),
            checkpoint: req.checkpoint.clone(),
            pid: init.pid(),
            ..Default::default()
        })
        .await;

        // OOM kills, as the SDK reports them, until the container exits.
        let mut ooms = containers::oom_kills(&task.ctr);
        let (sh2, id) = (self.shared.clone(), req.id.clone());
        tokio::spawn(async move {
            while ooms.next().await.is_some() {
                sh2.publish(TaskOOM {
                    container_id: id.clone(),
                    ..Default::default()
                })
                .await;
            }
        });
        // The first process's exit, announced after its start.
        let (sh2, t) = (self.shared.clone(), task.clone());
        tokio::spawn(async move {
            let exit = match containers::wait(&t.ctr).await {
                Ok(e) => e,
                Err(e) => {
                    log::error!("wait for {}: {e}", t.id);
                    Exit { code: 255 }
                }
            };
            let _started = t.start_lock.lock().await;
            sh2.exited(&t, "", &t.init, exit).await;
        });
        Ok(CreateTaskResponse {
            pid: init.pid(),
            ..Default::default()
        })
    }

    async fn do_start(&self, req: StartRequest) -> Result<StartResponse> {
        let sh = &self.shared;
        let task = sh.task(&req.id)?;
        if req.exec_id.is_empty() {
            let _g = task.start_lock.lock().await;
            if task.init.exited().is_some() {
                return Err(Error::FailedPrecondition(format!(
                    "task {} has exited",
                    task.id
                )));
            }
            containers::start(&task.ctr).await?;
            sh.publish(TaskStart {
                container_id: task.id.clone(),
                pid: task.init.pid(),
                ..Default::default()
            })
            .await;
            return Ok(StartResponse {
                pid: task.init.pid(),
                ..Default::default()
            });
        }
        let entry = task.exec(&req.exec_id)?;
        let p = {
            if entry
                .handle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_some()
            {
                return Err(Error::FailedPrecondition(format!(
                    "process {} already started",
                    req.exec_id
                )));
            }
            let streams = crate::io::streams(&entry.proc.paths)?;
            let mut spec = entry.spec.clone();
            spec.set_terminal(Some(entry.proc.paths.terminal));
            let p = Arc::new(containers::exec(&task.ctr, &spec, streams).await?);
            *entry.handle.lock().unwrap_or_else(|p| p.into_inner()) = Some(p.clone());
            p
        };
        let pid = containers::exec_pid(&p);
        entry.proc.pid.store(pid, Ordering::SeqCst);
        let io = if entry.proc.paths.terminal {
            match containers::take_exec_pty(&p) {
                Some(m) => ProcIo::attach_pty(m, &entry.proc.paths),
                None => Err(Error::FailedPrecondition(
                    "exec without its terminal".into(),
                )),
            }
        } else {
            Ok(ProcIo::attach_pipes(
                containers::take_exec_stdin(&p),
                &entry.proc.paths,
            ))
        };
        match io {
            Ok(io) => entry.proc.set_io(io),
            Err(e) => {
                let _ = containers::exec_kill(&p, 9);
                return Err(e);
            }
        }
        sh.publish(TaskExecStarted {
            container_id: task.id.clone(),
            exec_id: req.exec_id.clone(),
            pid,
            ..Default::default()
        })
        .await;
        let (sh2, t, e, exec_id) = (
            self.shared.clone(),
            task.clone(),
            entry.clone(),
            req.exec_id.clone(),
        );
        tokio::spawn(async move {
            let exit = match containers::exec_wait(&p).await {
                Ok(e) => e,
                Err(err) => {
                    log::error!("wait for exec {exec_id}: {err}");
                    Exit { code: 255 }
                }
            };
            sh2.exited(&t, &exec_id, &e.proc, exit).await;
        });
        Ok(StartResponse {
            pid,
            ..Default::default()
        })
    }

    async fn do_state(&self, req: StateRequest) -> Result<StateResponse> {
        let task = self.shared.task(&req.id)?;
        let proc = task.proc(&req.exec_id)?;
        let (status, exited) = match proc.exited() {
            Some(e) => (ApiStatus::STOPPED, Some(e)),
            None if req.exec_id.is_empty() => match containers::status(&task.ctr).await? {
                Status::Created => (ApiStatus::CREATED, None),
                Status::Running => (ApiStatus::RUNNING, None),
                Status::Paused => (ApiStatus::PAUSED, None),
                // Exited: the exit is being recorded.
                Status::Stopped => (ApiStatus::STOPPED, Some(proc.wait().await)),
            },
            None => {
                let started = task
                    .exec(&req.exec_id)?
                    .handle
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .is_some();
                if started {
                    (ApiStatus::RUNNING, None)
                } else {
                    (ApiStatus::CREATED, None)
                }
            }
        };
        Ok(StateResponse {
            id: if req.exec_id.is_empty() {
                task.id.clone()
            } else {
                req.exec_id.clone()
            },
            bundle: task.bundle.display().to_string(),
            pid: proc.pid(),
            status: status.into(),
            stdin: proc.paths.stdin.clone(),
            stdout: proc.paths.stdout.clone(),
            stderr: proc.paths.stderr.clone(),
            terminal: proc.paths.terminal,
            exit_status: exited.map(|e| e.code).unwrap_or_default(),
            exited_at: exited
                .map(|e| MessageField::some(timestamp(e.at)))
                .unwrap_or_default(),
            exec_id: req.exec_id.clone(),
            ..Default::default()
        })
    }

    async fn do_kill(&self, req: KillRequest) -> Result<()> {
        let task = self.shared.task(&req.id)?;
        let proc = task.proc(&req.exec_id)?;
        if proc.exited().is_some() {
            return Err(Error::NotFound(format!(
                "process {} already finished",
                if req.exec_id.is_empty() {
                    &req.id
                } else {
                    &req.exec_id
                }
            )));
        }
        if req.exec_id.is_empty() {
            return containers::kill(&task.ctr, req.signal, req.all).await;
        }
        let entry = task.exec(&req.exec_id)?;
        let handle = entry
            .handle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match handle {
            Some(p) => containers::exec_kill(&p, req.signal),
            None => Err(Error::FailedPrecondition(format!(
                "process {} is not started",
                req.exec_id
            ))),
        }
    }

    async fn do_delete(&self, req: DeleteRequest) -> Result<DeleteResponse> {
        let sh = &self.shared;
        let task = sh.task(&req.id)?;
        if !req.exec_id.is_empty() {
            let entry = task.exec(&req.exec_id)?;
            let started = entry
                .handle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_some();
            let exited = entry.proc.exited();
            if started && exited.is_none() {
                return Err(Error::FailedPrecondition(format!(
                    "process {} is running",
                    req.exec_id
                )));
            }
            task.execs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&req.exec_id);
            return Ok(DeleteResponse {
                pid: entry.proc.pid(),
                exit_status: exited.map(|e| e.code).unwrap_or_default(),
                exited_at: exited
                    .map(|e| MessageField::some(timestamp(e.at)))
                    .unwrap_or_default(),
                ..Default::default()
            });
        }
        let (exited, deleted) = match task.init.exited() {
            Some(e) => (e, false),
            None => match containers::status(&task.ctr).await? {
                Status::Created => {
                    // Never started: removed (its process killed) as
                    // `runc delete` would.
                    containers::delete(&task.ctr, true).await?;
                    (task.init.wait().await, true)
                }
                Status::Stopped => (task.init.wait().await, false),
                _ => {
                    return Err(Error::FailedPrecondition(format!(
                        "task {} is running",
                        task.id
                    )))
                }
            },
        };
        if !deleted {
            containers::delete(&task.ctr, true).await?;
        }
        if let Some(r) = &task.rootfs {
            unmount(r);
        }
        sh.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&task.id);
        sh.publish(TaskDelete {
            container_id: task.id.clone(),
            pid: task.init.pid(),
            exit_status: exited.code,
            exited_at: MessageField::some(timestamp(exited.at)),
            id: task.id.clone(),
            ..Default::default()
        })
        .await;
        Ok(DeleteResponse {
            pid: task.init.pid(),
            exit_status: exited.code,
            exited_at: MessageField::some(timestamp(exited.at)),
            ..Default::default()
        })
    }

    async fn do_exec(&self, req: ExecProcessRequest) -> Result<()> {
        let sh = &self.shared;
        let task = sh.task(&req.id)?;
        if task.init.exited().is_some() {
            return Err(Error::FailedPrecondition(format!(
                "task {} has exited",
                task.id
            )));
        }
        let Some(any) = req.spec.as_ref() else {
            return Err(Error::InvalidArgument("exec without a process spec".into()));
        };
        let spec: Process = serde_json::from_slice(&any.value)
            .map_err(|e| Error::InvalidArgument(format!("exec process spec: {e}")))?;
        {
            let mut execs = task.execs.lock().unwrap_or_else(|p| p.into_inner());
            if execs.contains_key(&req.exec_id) {
                return Err(Error::AlreadyExists(format!("process {}", req.exec_id)));
            }
            let paths = Paths {
                stdin: req.stdin.clone(),
                stdout: req.stdout.clone(),
                stderr: req.stderr.clone(),
                terminal: req.terminal,
            };
            execs.insert(
                req.exec_id.clone(),
                Arc::new(ExecEntry {
                    spec,
                    proc: Proc::new(paths),
                    handle: Mutex::new(None),
                }),
            );
        }
        sh.publish(TaskExecAdded {
            container_id: task.id.clone(),
            exec_id: req.exec_id.clone(),
            ..Default::default()
        })
        .await;
        Ok(())
    }

    async fn do_update(&self, req: UpdateTaskRequest) -> Result<()> {
        let task = self.shared.task(&req.id)?;
        let Some(any) = req.resources.as_ref() else {
            return Err(Error::InvalidArgument("update without resources".into()));
        };
        let resources: LinuxResources = serde_json::from_slice(&any.value)
            .map_err(|e| Error::InvalidArgument(format!("resources: {e}")))?;
        containers::update(&task.ctr, &resources).await
    }
}

/// Lazily unmounts a task's rootfs (and what is mounted below it).
fn unmount(target: &Path) {
    if let Err(e) = nix::mount::umount2(target, nix::mount::MntFlags::MNT_DETACH) {
        if e != nix::errno::Errno::EINVAL && e != nix::errno::Errno::ENOENT {
            log::warn!("unmount {}: {e}", target.display());
        }
    }
}

#[async_trait]
impl containerd_shim::Task for Service {
    async fn state(&self, _ctx: &TtrpcContext, req: StateRequest) -> TtrpcResult<StateResponse> {
        Ok(self.do_state(req).await?)
    }

    async fn create(
        &self,
        _ctx: &TtrpcContext,
        req: CreateTaskRequest,
    ) -> TtrpcResult<CreateTaskResponse> {
        Ok(self.do_create(req).await?)
    }

    async fn start(&self, _ctx: &TtrpcContext, req: StartRequest) -> TtrpcResult<StartResponse> {
        Ok(self.do_start(req).await?)
    }

    async fn delete(&self, _ctx: &TtrpcContext, req: DeleteRequest) -> TtrpcResult<DeleteResponse> {
        Ok(self.do_delete(req).await?)
    }

    async fn pids(&self, _ctx: &TtrpcContext, req: PidsRequest) -> TtrpcResult<PidsResponse> {
        let task = self.shared.task(&req.id)?;
        let pids = containers::pids(&task.ctr).await?;
        Ok(PidsResponse {
            processes: pids
                .into_iter()
                .map(|pid| ProcessInfo {
                    pid: u32::try_from(pid).unwrap_or(0),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
    }

    async fn pause(&self, _ctx: &TtrpcContext, req: PauseRequest) -> TtrpcResult<Empty> {
        let task = self.shared.task(&req.id)?;
        containers::pause(&task.ctr).await?;
        self.shared
            .publish(TaskPaused {
                container_id: task.id.clone(),
                ..Default::default()
            })
            .await;
        Ok(Empty::new())
    }

    async fn resume(&self, _ctx: &TtrpcContext, req: ResumeRequest) -> TtrpcResult<Empty> {
        let task = self.shared.task(&req.id)?;
        containers::resume(&task.ctr).await?;
        self.shared
            .publish(TaskResumed {
                container_id: task.id.clone(),
                ..Default::default()
            })
            .await;
        Ok(Empty::new())
    }

    async fn checkpoint(
        &self,
        _ctx: &TtrpcContext,
        _req: CheckpointTaskRequest,
    ) -> TtrpcResult<Empty> {
        Err(Error::Unimplemented("checkpoint").into())
    }

    async fn kill(&self, _ctx: &TtrpcContext, req: KillRequest) -> TtrpcResult<Empty> {
        self.do_kill(req).await?;
        Ok(Empty::new())
    }

    async fn exec(&self, _ctx: &TtrpcContext, req: ExecProcessRequest) -> TtrpcResult<Empty> {
        self.do_exec(req).await?;
        Ok(Empty::new())
    }

    async fn resize_pty(&self, _ctx: &TtrpcContext, req: ResizePtyRequest) -> TtrpcResult<Empty> {
        let task = self.shared.task(&req.id)?;
        task.proc(&req.exec_id)?
            .io()
            .resize(req.width, req.height)?;
        Ok(Empty::new())
    }

    async fn close_io(&self, _ctx: &TtrpcContext, req: CloseIORequest) -> TtrpcResult<Empty> {
        let task = self.shared.task(&req.id)?;
        if req.stdin {
            task.proc(&req.exec_id)?.io().close_stdin();
        }
        Ok(Empty::new())
    }

    async fn update(&self, _ctx: &TtrpcContext, req: UpdateTaskRequest) -> TtrpcResult<Empty> {
        self.do_update(req).await?;
        Ok(Empty::new())
    }

    async fn wait(&self, _ctx: &TtrpcContext, req: WaitRequest) -> TtrpcResult<WaitResponse> {
        let task = self.shared.task(&req.id)?;
        let proc = task.proc(&req.exec_id)?;
        let e = proc.wait().await;
        Ok(WaitResponse {
            exit_status: e.code,
            exited_at: MessageField::some(timestamp(e.at)),
            ..Default::default()
        })
    }

    async fn stats(&self, _ctx: &TtrpcContext, req: StatsRequest) -> TtrpcResult<StatsResponse> {
        let task = self.shared.task(&req.id)?;
        let stats = containers::stats(&task.ctr).await?;
        Ok(StatsResponse {
            stats: MessageField::some(crate::metrics::to_any(
                &stats,
                containers::unified_cgroups(),
            )?),
            ..Default::default()
        })
    }

    async fn connect(
        &self,
        _ctx: &TtrpcContext,
        req: ConnectRequest,
    ) -> TtrpcResult<ConnectResponse> {
        let task_pid = self
            .shared
            .task(&req.id)
            .map(|t| t.init.pid())
            .unwrap_or_default();
        Ok(ConnectResponse {
            shim_pid: std::process::id(),
            task_pid,
            ..Default::default()
        })
    }

    async fn shutdown(&self, _ctx: &TtrpcContext, _req: ShutdownRequest) -> TtrpcResult<Empty> {
        let empty = self
            .shared
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty();
        if empty {
            // What is still in flight (an OOM kill's event) goes out first.
            self.shared.publisher.flush().await;
            self.shared.exit.signal();
        }
        Ok(Empty::new())
    }
}
