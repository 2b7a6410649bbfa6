//! Where the module's cluster calls run: a current-thread tokio runtime
//! that the calling thread drives for the length of its own call, and one
//! thread of the module's that drives it while no call is under way.
//!
//! A call from C blocks its thread anyway. Letting that thread run the
//! runtime (its QUIC connections, timers and sockets) means the request
//! is sent and the response read without waking another thread and
//! waiting for it to be scheduled: on a busy host those two hand-offs per
//! call cost more than the call's own work. Between calls the idle
//! thread keeps the connections alive (keep-alives, acknowledgements, a
//! node's close) and runs the SDK's background work; it gives the runtime
//! up as soon as a call starts, and takes it back only after
//! [`IDLE_GAP`] without calls, so an application calling in a loop never
//! meets it. With many threads calling at once, one of them drives the
//! runtime for all (tokio's current-thread runtime lets each wait on its
//! own future meanwhile).
//!
//! An application that forbids the module its own threads
//! (`CKF_LIBRARY_CANT_CREATE_OS_THREADS`) gets no idle thread: nothing
//! runs between its calls, and a connection that timed out meanwhile is
//! made again on the next call.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;
use tokio::sync::Notify;

/// Time without calls after which the idle thread drives the runtime; it
/// looks this often while calls run (keep-alives are seconds apart).
pub const IDLE_GAP: Duration = Duration::from_millis(10);
/// Longest the idle thread holds the runtime before it looks again
/// (a call or finalize asks it back sooner).
const IDLE_SLICE: Duration = Duration::from_millis(500);

/// The runtime and who drives it.
pub struct Driver {
    runtime: Arc<Runtime>,
    shared: Arc<Shared>,
    idle: Option<JoinHandle<()>>,
}

struct Shared {
    /// Calls under way.
    callers: AtomicUsize,
    /// The idle thread is (about to be) driving the runtime.
    driving: AtomicBool,
    stop: AtomicBool,
    /// Asks the idle thread to give the runtime up.
    give_up: Notify,
    start: Instant,
    /// When the last call ended, in microseconds since `start`.
    last_call: AtomicU64,
}

impl Shared {
    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn quiet_for(&self) -> Duration {
        Duration::from_micros(
            self.now()
                .saturating_sub(self.last_call.load(Ordering::Acquire)),
        )
    }
}

impl Driver {
    /// A runtime, with an idle thread if `idle_thread`.
    ///
    /// # Errors
    /// The runtime or the thread could not be made.
    pub fn new(idle_thread: bool) -> std::io::Result<Driver> {
        let runtime = Arc::new(
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?,
        );
        let shared = Arc::new(Shared {
            callers: AtomicUsize::new(0),
            driving: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            give_up: Notify::new(),
            start: Instant::now(),
            last_call: AtomicU64::new(0),
        });
        let idle = if idle_thread {
            let (r, s) = (runtime.clone(), shared.clone());
            Some(
                std::thread::Builder::new()
                    .name("hsm-pkcs11-idle".into())
                    .spawn(move || drive_while_idle(&r, &s))?,
            )
        } else {
            None
        };
        Ok(Driver {
            runtime,
            shared,
            idle,
        })
    }

    /// Enters the runtime's context (to make what needs one).
    pub fn enter(&self) -> tokio::runtime::EnterGuard<'_> {
        self.runtime.enter()
    }

    /// Runs `f` to completion on the calling thread, which drives the
    /// runtime meanwhile. A caller already inside a tokio runtime cannot
    /// block there, and neither can a thread being torn down whose tokio
    /// context is gone already (an application that closes its sessions
    /// from a thread-local destructor or at exit): such a call is driven
    /// from a thread made for it, or, when the module may not make
    /// threads, refused (`None`). Never called from the module's own
    /// runtime.
    pub fn run<F>(&self, f: F) -> Option<F::Output>
    where
        F: Future + Send,
        F::Output: Send,
    {
        let cannot_block_here = match tokio::runtime::Handle::try_current() {
            Ok(_) => true,
            Err(e) => e.is_thread_local_destroyed(),
        };
        if cannot_block_here {
            self.idle.as_ref()?;
            return std::thread::scope(|s| match s.spawn(|| self.run_here(f)).join() {
                Ok(out) => Some(out),
                Err(panic) => std::panic::resume_unwind(panic),
            });
        }
        Some(self.run_here(f))
    }

    fn run_here<F: Future>(&self, f: F) -> F::Output {
        let s = &self.shared;
        // Paired with the idle thread's store to `driving` and load of
        // `callers` (both SeqCst): either it sees this call and stays off
        // the runtime, or this call sees it driving and asks it back.
        s.callers.fetch_add(1, Ordering::SeqCst);
        if s.driving.load(Ordering::SeqCst) {
            s.give_up.notify_one();
        }
        let out = self.runtime.block_on(f);
        s.last_call.store(s.now(), Ordering::Release);
        s.callers.fetch_sub(1, Ordering::SeqCst);
        out
    }
}

fn drive_while_idle(runtime: &Runtime, s: &Shared) {
    while !s.stop.load(Ordering::Acquire) {
        if s.callers.load(Ordering::SeqCst) > 0 || s.quiet_for() < IDLE_GAP {
            std::thread::park_timeout(IDLE_GAP);
            continue;
        }
        s.driving.store(true, Ordering::SeqCst);
        if s.callers.load(Ordering::SeqCst) == 0 {
            runtime.block_on(async {
                tokio::select! {
                    () = s.give_up.notified() => {}
                    () = tokio::time::sleep(IDLE_SLICE) => {}
                }
            });
        }
        s.driving.store(false, Ordering::SeqCst);
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.give_up.notify_one();
        if let Some(idle) = self.idle.take() {
            idle.thread().unpark();
            let _ = idle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Calls the driver from a thread-local destructor that runs after
    /// tokio's own thread-local is gone, and sends what the call returned.
    struct CallOnExit(Arc<Driver>, std::sync::mpsc::Sender<Option<u32>>);

    impl Drop for CallOnExit {
        fn drop(&mut self) {
            let _ = self.1.send(self.0.run(async { 7 }));
        }
    }

    thread_local! {
        static ON_EXIT: std::cell::RefCell<Option<CallOnExit>> =
            const { std::cell::RefCell::new(None) };
    }

    /// libp11 and OpenSSL close sessions from thread and process exit
    /// handlers: a call then must not panic across the C boundary (which
    /// aborts the application) because tokio's context is gone.
    #[test]
    fn a_call_from_a_thread_being_torn_down_is_driven_elsewhere() {
        let d = Arc::new(Driver::new(true).expect("driver"));
        let (tx, rx) = std::sync::mpsc::channel();
        let caller = std::thread::spawn({
            let d = d.clone();
            move || {
                // Thread-local destructors run in the reverse order of
                // first use: tokio's (used second) is gone when ours runs.
                ON_EXIT.with(|c| *c.borrow_mut() = Some(CallOnExit(d, tx)));
                let _ = tokio::runtime::Handle::try_current();
            }
        });
        caller.join().expect("the thread ended without a panic");
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(Some(7)));
    }

    #[test]
    fn a_call_is_driven_by_its_own_thread() {
        let d = Driver::new(true).expect("driver");
        let caller = std::thread::current().id();
        let ran_on = d.run(async { std::thread::current().id() });
        assert_eq!(ran_on, Some(caller));
    }

    #[test]
    fn work_spawned_by_a_call_goes_on_between_calls() {
        let d = Driver::new(true).expect("driver");
        let (tx, rx) = std::sync::mpsc::channel();
        d.run(async move {
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let _ = tx.send(());
            });
        });
        // No call is under way: only the idle thread can run the task.
        assert!(rx.recv_timeout(Duration::from_secs(10)).is_ok());
    }

    #[test]
    fn without_an_idle_thread_nothing_runs_between_calls() {
        let d = Driver::new(false).expect("driver");
        let (tx, rx) = std::sync::mpsc::channel();
        d.run(async move {
            tokio::spawn(async move {
                let _ = tx.send(());
            });
        });
        assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
        // The next call runs it.
        d.run(async { tokio::time::sleep(Duration::from_millis(5)).await });
        assert!(rx.recv_timeout(Duration::from_secs(10)).is_ok());
    }

    #[test]
    fn many_threads_call_at_once() {
        let d = Arc::new(Driver::new(true).expect("driver"));
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let d = d.clone();
                std::thread::spawn(move || {
                    (0..200u64)
                        .map(|j| {
                            d.run(async move {
                                tokio::task::yield_now().await;
                                tokio::time::sleep(Duration::from_micros(50)).await;
                                i * 1000 + j
                            })
                            .expect("ran")
                        })
                        .sum::<u64>()
                })
            })
            .collect();
        let total: u64 = threads.into_iter().map(|t| t.join().expect("thread")).sum();
        let want: u64 = (0..8u64)
            .map(|i| (0..200u64).map(|j| i * 1000 + j).sum::<u64>())
            .sum();
        assert_eq!(total, want);
    }

    #[test]
    fn a_caller_inside_a_runtime_is_served_from_another_thread() {
        let d = Driver::new(true).expect("driver");
        let outer = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let got = outer.block_on(async { d.run(async { 7 }) });
        assert_eq!(got, Some(7));
        // Without threads of its own, the module refuses such a caller.
        let bare = Driver::new(false).expect("driver");
        assert_eq!(outer.block_on(async { bare.run(async { 7 }) }), None);
    }
}
