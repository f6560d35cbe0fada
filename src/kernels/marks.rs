//! Marker no-ops around the parallel jobs and tasks, for `scripts/thread_bound.py`: with the
//! cargo feature `insn-marks`, a job's start and end (on the calling thread) and every task's
//! start and end (on the thread running it) execute one no-op instruction of a form compilers
//! never emit (aarch64 `hint #124..#127`, x86-64 `nopl 0x5eed007c..f(%rax)`), which the qemu
//! plugin `scripts/qemu/threads.c` watches for to split each thread's instructions into serial,
//! pool and task work. Without the feature (every normal build) they compile to nothing.

/// A job starts on the calling thread.
pub(crate) const JOB_BEGIN: u32 = 0;
/// The job's caller leaves it (every task done).
pub(crate) const JOB_END: u32 = 1;
/// A task starts on this thread.
pub(crate) const TASK_BEGIN: u32 = 2;
/// The task ends.
pub(crate) const TASK_END: u32 = 3;

/// Executes marker `K` (one of the constants above) when the feature is on.
#[inline(always)]
pub(crate) fn mark<const K: u32>() {
    #[cfg(all(feature = "insn-marks", target_arch = "aarch64"))]
    // SAFETY: a hint in the architecture's no-op space: no registers, flags or memory touched.
    unsafe {
        std::arch::asm!("hint #{k}", k = const 124 + K, options(nostack, preserves_flags))
    };
    #[cfg(all(feature = "insn-marks", target_arch = "x86_64"))]
    // SAFETY: a multi-byte no-op; its memory operand is never accessed.
    unsafe {
        std::arch::asm!("nop dword ptr [rax + {d}]", d = const 0x5eed_007c + K, options(nostack, preserves_flags))
    };
}

/// Runs task `i` of `task` between its two markers.
#[inline(always)]
pub(crate) fn task(task: &(dyn Fn(usize) + Sync + '_), i: usize) {
    mark::<TASK_BEGIN>();
    task(i);
    mark::<TASK_END>();
}

/// Marks a job's start; its drop marks the end (on every way out of the job).
pub(crate) struct Job;

impl Job {
    #[inline(always)]
    pub(crate) fn begin() -> Job {
        mark::<JOB_BEGIN>();
        Job
    }
}

impl Drop for Job {
    #[inline(always)]
    fn drop(&mut self) {
        mark::<JOB_END>();
    }
}
