//! Runs blocking engine work (a recommendation with model inference) on a
//! small pool of the engine's own threads, for async callers: the caller's
//! executor thread only polls a future that the worker completes.

use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};

use crate::error::EngineError;

type Job = Box<dyn FnOnce() + Send>;

/// The worker threads, started on first use.
pub(crate) struct Offload {
    threads: usize,
    jobs: OnceLock<Result<Mutex<Sender<Job>>, String>>,
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
            Ok(jobs) => jobs
                .lock()
                .map_err(|_| "worker queue poisoned".to_string())
                .and_then(|jobs| jobs.send(job).map_err(|_| "the engine's worker threads stopped".to_string())),
            Err(reason) => Err(reason.clone()),
        };
        if let Err(reason) = sent {
            if let Ok(mut slot) = slot.lock() {
                slot.result = Some(Err(EngineError::Poisoned(reason)));
            }
        }
        Outcome { slot }
    }

    fn start(&self) -> Result<Mutex<Sender<Job>>, String> {
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for at in 0..self.threads {
            let receiver = Arc::clone(&receiver);
            std::thread::Builder::new()
                .name(format!("recwal-offload-{at}"))
                .spawn(move || loop {
                    // One worker waits on the queue at a time; the job runs
                    // after the lock is released.
                    let job = match receiver.lock() {
                        Ok(queue) => queue.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return, // the engine is gone
                    }
                })
                .map_err(|err| format!("cannot start a worker thread: {err}"))?;
        }
        Ok(Mutex::new(sender))
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
