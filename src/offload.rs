//! Runs blocking engine work (a recommendation with model inference) on a
//! small pool of the engine's own threads, for async callers: the caller's
//! executor thread only polls a future that the worker completes.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};

use crossbeam_channel::Sender;

use crate::error::EngineError;

type Job = Box<dyn FnOnce() + Send>;

/// The worker threads, started on first use.
pub(crate) struct Offload {
    threads: usize,
    jobs: OnceLock<Result<Sender<Job>, String>>,
}

impl Offload {
    pub fn new(threads: usize) -> Offload {
        Offload { threads: threads.max(1), jobs: OnceLock::new() }
    }

    /// Runs `work` on a worker; the future resolves to its result. Dropping
    /// the future does not stop the work (its result is discarded).
    pub fn run<T: Send + 'static>(&self, work: impl FnOnce() -> Result<T, EngineError> + Send + 'static) -> Outcome<T> {
        let slot = Arc::new(Mutex::new(Slot { result: None, waker: None }));
        let filled = Arc::clone(&slot);
        let job: Job = Box::new(move || {
            // A panic must still complete the future, and keep the worker.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
                .unwrap_or_else(|_| Err(EngineError::Poisoned("offloaded work panicked".into())));
            if let Ok(mut slot) = filled.lock() {
                slot.result = Some(result);
                if let Some(waker) = slot.waker.take() {
                    waker.wake();
                }
            }
        });
        let sent = match self.jobs.get_or_init(|| self.start()) {
            Ok(jobs) => jobs.send(job).map_err(|_| "the engine's worker threads stopped".to_string()),
            Err(reason) => Err(reason.clone()),
        };
        if let Err(reason) = sent {
            if let Ok(mut slot) = slot.lock() {
                slot.result = Some(Err(EngineError::Poisoned(reason)));
            }
        }
        Outcome { slot }
    }

    fn start(&self) -> Result<Sender<Job>, String> {
        // A multi-consumer channel: every idle worker waits on it (briefly
        // spinning before it sleeps), with no lock between them.
        let (sender, receiver) = crossbeam_channel::unbounded::<Job>();
        for at in 0..self.threads {
            let receiver = receiver.clone();
            std::thread::Builder::new()
                .name(format!("recwal-offload-{at}"))
                .spawn(move || {
                    // Ends once the engine (the sender) is gone.
                    for job in receiver {
                        job();
                    }
                })
                .map_err(|err| format!("cannot start a worker thread: {err}"))?;
        }
        Ok(sender)
    }
}

struct Slot<T> {
    result: Option<Result<T, EngineError>>,
    waker: Option<Waker>,
}

/// The result of offloaded work.
pub struct Outcome<T> {
    slot: Arc<Mutex<Slot<T>>>,
}

impl<T> Future for Outcome<T> {
    type Output = Result<T, EngineError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Ok(mut slot) = self.slot.lock() else {
            return Poll::Ready(Err(EngineError::Poisoned("a worker panicked".into())));
        };
        match slot.result.take() {
            Some(result) => Poll::Ready(result),
            None => {
                slot.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}
