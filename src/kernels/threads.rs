//! [`ThreadPool`]: a fixed set of worker threads that run the int8 kernels' tasks
//! ([`Parallel`]), with no allocation per run and no dependency beyond `std`.
//!
//! Before 2026-12-01 the kernels ran on tract's rayon pool. rayon's generic job machinery,
//! instantiated by tract for every element-wise op and type it threads, was 4.8 MB of the
//! 17.4 MB aarch64 runtime binary; the runtime build now leaves tract single-threaded (its
//! `tract-threads` feature brings rayon back for f32 layers) and threads the int8 kernels here.
//!
//! A run publishes one job (the task and its count) under a mutex, wakes the workers, and takes
//! tasks itself; each task index is claimed once from an atomic counter. The caller returns
//! only when no worker is inside the job any more, so the job may borrow from its stack. After
//! a job, a worker spins briefly before sleeping: a network's layers follow each other within
//! microseconds, and waking a sleeping thread costs more than that. For the same reason the
//! caller polls briefly for the workers still in their last task before it sleeps, and neither
//! side makes the wake-up system call unless the other is asleep.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, TryLockError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::marks;
use super::tasks::Parallel;

type Task = dyn Fn(usize) + Sync;

/// How long an idle worker keeps polling for the next job before it sleeps.
const SPIN: Duration = Duration::from_micros(50);

/// The job being run: a task borrowed from the caller of [`ThreadPool::run`], whose lifetime is
/// erased. Sound because `run` clears it and waits for every worker that took it before it
/// returns.
#[derive(Clone, Copy)]
struct Job {
    task: *const Task,
    n: usize,
}

// SAFETY: the task is `Sync` (shared by reference between threads) and outlives its use (above).
unsafe impl Send for Job {}

struct State {
    /// Jobs posted so far: a worker takes each at most once.
    epoch: u64,
    /// The current job, `None` once its caller has finished taking tasks.
    job: Option<Job>,
    /// Workers inside the current job.
    active: usize,
    /// A worker's task panicked (re-raised by the caller).
    panicked: bool,
    shutdown: bool,
    /// Workers asleep on `work` (a job is announced to them by a notification; the others see
    /// it by polling `posted`, and a notification nobody waits for is a wasted system call).
    sleeping: usize,
    /// The caller is asleep on `idle`, waiting for `active` to fall to 0.
    waiting: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Workers wait here for a new epoch.
    work: Condvar,
    /// The caller waits here for `active == 0`.
    idle: Condvar,
    /// The current job's next task index.
    next: AtomicUsize,
    /// `State::epoch`, readable without the lock (for spinning).
    posted: AtomicU64,
    /// `State::active`, readable without the lock (for the caller's spinning).
    active: AtomicUsize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Tasks run outside the lock, so it is never poisoned by them; recover anyway.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Runs `task(i)` for the indices it claims from `next`, until all `n` are claimed.
fn claim(next: &AtomicUsize, n: usize, task: &(dyn Fn(usize) + Sync + '_)) {
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= n {
            break;
        }
        marks::task(task, i);
    }
}

fn worker(shared: &Shared) {
    let mut seen = 0u64;
    loop {
        let start = Instant::now();
        let mut polls = 0u32;
        while shared.posted.load(Ordering::Acquire) == seen {
            std::hint::spin_loop();
            polls += 1;
            if polls.is_multiple_of(64) && start.elapsed() > SPIN {
                break;
            }
        }
        let mut st = shared.lock();
        while st.epoch == seen && !st.shutdown {
            st.sleeping += 1;
            st = shared.work.wait(st).unwrap_or_else(|e| e.into_inner());
            st.sleeping -= 1;
        }
        if st.shutdown {
            return;
        }
        seen = st.epoch;
        // A job already finished by its caller (this worker came late) has no tasks left.
        let Some(job) = st.job else { continue };
        st.active += 1;
        shared.active.store(st.active, Ordering::Release);
        drop(st);
        // SAFETY: the job's caller waits for `active` to return to 0 before its task goes.
        let task = unsafe { &*job.task };
        let ok = catch_unwind(AssertUnwindSafe(|| claim(&shared.next, job.n, task))).is_ok();
        let mut st = shared.lock();
        st.panicked |= !ok;
        st.active -= 1;
        shared.active.store(st.active, Ordering::Release);
        if st.active == 0 && st.waiting {
            shared.idle.notify_one();
        }
    }
}

/// `threads - 1` worker threads (the caller of [`run`](Parallel::run) is the last one),
/// started on the first run that has more than one task. Dropping the pool stops them.
///
/// A run while another is under way on the same pool (two sessions of one engine on two
/// threads) runs its tasks on its own thread instead of waiting.
pub struct ThreadPool {
    threads: usize,
    shared: Arc<Shared>,
    workers: OnceLock<Vec<JoinHandle<()>>>,
    /// Held by the run in progress.
    busy: Mutex<()>,
}

impl std::fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ThreadPool({} threads)", self.threads)
    }
}

impl ThreadPool {
    /// A pool running tasks on `threads` threads, the caller's included (0 counts as 1).
    pub fn new(threads: usize) -> Self {
        let state = State { epoch: 0, job: None, active: 0, panicked: false, shutdown: false, sleeping: 0, waiting: false };
        let shared = Shared {
            state: Mutex::new(state),
            work: Condvar::new(),
            idle: Condvar::new(),
            next: AtomicUsize::new(0),
            posted: AtomicU64::new(0),
            active: AtomicUsize::new(0),
        };
        ThreadPool { threads: threads.max(1), shared: Arc::new(shared), workers: OnceLock::new(), busy: Mutex::new(()) }
    }

    /// The workers, started on first use. A worker that cannot be started is logged and left
    /// out (its share of the tasks goes to the others).
    fn start(&self) -> usize {
        self.workers
            .get_or_init(|| {
                (1..self.threads)
                    .filter_map(|i| {
                        let shared = Arc::clone(&self.shared);
                        std::thread::Builder::new()
                            .name(format!("edgenet-{i}"))
                            .spawn(move || worker(&shared))
                            .map_err(|e| log::warn!("could not start worker thread {i} of {}: {e}", self.threads))
                            .ok()
                    })
                    .collect()
            })
            .len()
    }
}

impl Parallel for ThreadPool {
    fn threads(&self) -> usize {
        self.threads
    }

    fn run(&self, n: usize, task: &(dyn Fn(usize) + Sync)) {
        let _job = marks::Job::begin();
        let sequential = || (0..n).for_each(|i| marks::task(task, i));
        if n <= 1 || self.threads == 1 {
            return sequential();
        }
        let _busy = match self.busy.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => return sequential(),
        };
        if self.start() == 0 {
            return sequential();
        }
        let shared = &*self.shared;
        // SAFETY: only the lifetime is erased; see `Job`.
        let erased = unsafe { std::mem::transmute::<*const (dyn Fn(usize) + Sync + '_), *const Task>(task as *const _) };
        // No worker is inside a job here (the previous run waited for them), so the counter is
        // free; the lock below publishes it with the job.
        shared.next.store(0, Ordering::Relaxed);
        let wake = {
            let mut st = shared.lock();
            st.epoch += 1;
            st.job = Some(Job { task: erased, n });
            shared.posted.store(st.epoch, Ordering::Release);
            // A worker that is not asleep checks the epoch under the lock before it sleeps.
            st.sleeping > 0
        };
        if wake {
            shared.work.notify_all();
        }
        let mine = catch_unwind(AssertUnwindSafe(|| claim(&shared.next, n, task)));
        let mut st = shared.lock();
        st.job = None;
        if st.active > 0 {
            // Workers still in their last task: poll briefly before sleeping (a network's tasks
            // last microseconds; sleeping and being woken costs more).
            drop(st);
            let start = Instant::now();
            let mut polls = 0u32;
            while shared.active.load(Ordering::Acquire) > 0 {
                std::hint::spin_loop();
                polls += 1;
                if polls.is_multiple_of(64) && start.elapsed() > SPIN {
                    break;
                }
            }
            st = shared.lock();
        }
        // `active` under the lock decides; a worker leaving the job notifies `idle` when it sees
        // `waiting`, which it reads under the same lock.
        while st.active > 0 {
            st.waiting = true;
            st = shared.idle.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        st.waiting = false;
        let theirs = std::mem::take(&mut st.panicked);
        drop(st);
        if let Err(payload) = mine {
            resume_unwind(payload);
        }
        assert!(!theirs, "an int8 kernel task panicked on a worker thread");
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.shared.lock().shutdown = true;
        self.shared.work.notify_all();
        for w in self.workers.take().unwrap_or_default() {
            // A worker only ends by returning (tasks' panics are caught), so this cannot fail.
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[test]
    fn every_task_runs_exactly_once_run_after_run() {
        for threads in [1, 2, 3, 5] {
            let pool = ThreadPool::new(threads);
            for n in [0, 1, 2, 3, 7, 64, 1000] {
                let hits: Vec<AtomicU32> = (0..n).map(|_| AtomicU32::new(0)).collect();
                pool.run(n, &|i| {
                    hits[i].fetch_add(1, Ordering::Relaxed);
                });
                assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1), "{threads} threads, {n} tasks");
            }
        }
    }

    #[test]
    fn tasks_do_run_on_several_threads() {
        let pool = ThreadPool::new(2);
        let main = std::thread::current().id();
        let elsewhere = AtomicU32::new(0);
        // Each task waits a little, so the worker gets some whatever the scheduling.
        pool.run(64, &|_| {
            std::thread::sleep(Duration::from_millis(1));
            if std::thread::current().id() != main {
                elsewhere.fetch_add(1, Ordering::Relaxed);
            }
        });
        assert!(elsewhere.load(Ordering::Relaxed) > 0, "no task ran on the worker thread");
    }

    #[test]
    fn a_panicking_task_reaches_the_caller_and_the_pool_still_works() {
        let pool = ThreadPool::new(3);
        for round in 0..4 {
            let r = catch_unwind(AssertUnwindSafe(|| {
                pool.run(32, &|i| {
                    if i % 7 == round {
                        panic!("task {i}");
                    }
                })
            }));
            assert!(r.is_err(), "round {round}: the panic was lost");
            let sum = AtomicUsize::new(0);
            pool.run(100, &|i| {
                sum.fetch_add(i, Ordering::Relaxed);
            });
            assert_eq!(sum.into_inner(), 4950, "round {round}");
        }
    }

    #[test]
    fn concurrent_runs_on_one_pool_each_complete() {
        let pool = ThreadPool::new(3);
        std::thread::scope(|s| {
            for t in 0..4 {
                let pool = &pool;
                s.spawn(move || {
                    for round in 0..50 {
                        let sum = AtomicUsize::new(0);
                        pool.run(33 + t, &|i| {
                            sum.fetch_add(i + 1, Ordering::Relaxed);
                        });
                        let n = 33 + t;
                        assert_eq!(sum.into_inner(), n * (n + 1) / 2, "caller {t}, round {round}");
                    }
                });
            }
        });
    }
}
