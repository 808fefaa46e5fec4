//! Where berth makes its blocking system calls (files, cgroups, `/proc`,
//! the clone): on tokio's blocking pool, so that they never stall an async
//! worker, or on the calling thread inside [`on_caller`].

use std::future::Future;

tokio::task_local! {
    static ON_CALLER: ();
}

/// Runs `fut` with the blocking work berth does for it on the thread that
/// polls it rather than on tokio's blocking pool, and so the exit record of
/// a container created inside.
///
/// For a process that drives one container from a current-thread runtime,
/// as berth's CLI does: it then starts no thread of its own (a pool thread
/// costs its start, a stack and a malloc arena, and every call a wake-up of
/// another thread). Nothing else on that runtime runs while such a call
/// blocks, so an embedder with other work to do does not use it.
///
/// ```no_run
/// # async fn demo() -> berth::Result<()> {
/// use berth::{Bundle, Config, Runtime};
///
/// berth::blocking::on_caller(async {
///     let rt = Runtime::new(Config::default()).await?;
///     let ctr = rt.create("one", Bundle::from_dir("bundle").await?).await?;
///     ctr.start().await?;
///     ctr.wait().await?;
///     ctr.delete().await
/// })
/// .await
/// # }
/// ```
pub async fn on_caller<F: Future>(fut: F) -> F::Output {
    ON_CALLER.scope((), fut).await
}

/// Whether the current task runs inside [`on_caller`].
pub(crate) fn is_on_caller() -> bool {
    ON_CALLER.try_with(|_| ()).is_ok()
}

/// Runs the blocking `f` where berth runs its own: on tokio's blocking
/// pool, or at once on this thread inside [`on_caller`]. For extensions
/// (crates implementing [`crate::extension::Extension`]) in place of
/// `tokio::task::spawn_blocking(f).await`.
///
/// ```no_run
/// # async fn demo() -> Result<(), tokio::task::JoinError> {
/// let entries = berth::blocking::run(|| std::fs::read_dir("/run/berth").map(|d| d.count())).await?;
/// # Ok(()) }
/// ```
pub async fn run<T, F>(f: F) -> Result<T, tokio::task::JoinError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    run_on(is_on_caller(), f).await
}

/// [`run`], on this thread if `on_caller`.
pub(crate) async fn run_on<T, F>(on_caller: bool, f: F) -> Result<T, tokio::task::JoinError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    if on_caller {
        Ok(f())
    } else {
        tokio::task::spawn_blocking(f).await
    }
}

/// `tokio::spawn`, with the task inside [`on_caller`] if the caller is.
pub(crate) fn spawn<F>(fut: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    if is_on_caller() {
        tokio::spawn(ON_CALLER.scope((), fut))
    } else {
        tokio::spawn(fut)
    }
}
