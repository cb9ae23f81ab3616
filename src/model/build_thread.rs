//! Where model versions are built: sessions created, the contract checked,
//! the warm-up batch run. Each build runs on a thread of its own at a lower
//! CPU priority (nice `BUILD_NICE`), so that on a machine whose cores are
//! busy serving, a swap's build takes the CPU time the requests leave and
//! the serving threads are not made to wait behind it. The requests
//! themselves never run there: sessions use one intra-op thread, the
//! caller's (`loaded::new_session`), so a version built here serves on the
//! request threads at their own priority.

use tracing::debug;

/// The build thread's nice value (0 is the default; 19 the lowest priority).
pub(crate) const BUILD_NICE: i32 = 10;

/// Runs `build` on a new thread at nice `BUILD_NICE` and waits for it. Where
/// the priority cannot be lowered (a platform without per-thread nice
/// values) the build runs at the caller's priority, and says so at debug
/// level.
pub(crate) fn run<T: Send>(build: impl FnOnce() -> T + Send) -> Result<T, String> {
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name("recwal-model-build".into())
            .spawn_scoped(scope, || {
                // On Linux the nice value is per thread: only this one moves.
                let tid = rustix::thread::gettid();
                if let Err(err) = rustix::process::setpriority_process(Some(tid), BUILD_NICE) {
                    debug!(%err, "cannot lower the model-build thread's priority");
                }
                build()
            })
            .map_err(|err| format!("cannot start the model-build thread: {err}"))?;
        handle.join().map_err(|_| "the model build panicked".to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_run_at_the_lower_priority_and_the_caller_keeps_its_own() {
        let caller = rustix::process::getpriority_process(Some(rustix::thread::gettid()));
        let inside = run(|| rustix::process::getpriority_process(Some(rustix::thread::gettid())));
        assert_eq!(inside.ok().and_then(Result::ok), Some(BUILD_NICE.max(caller.as_ref().copied().unwrap_or(0))));
        assert_eq!(rustix::process::getpriority_process(Some(rustix::thread::gettid())).ok(), caller.ok());
        assert_eq!(run(|| 7), Ok(7));
    }
}
