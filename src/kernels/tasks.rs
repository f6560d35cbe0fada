//! How a kernel's work is split into tasks and where their per-thread buffers live.

/// Per-thread buffers of a task: im2col columns and their packed form, or a depthwise plane.
/// Each kernel set uses the fields its layout needs; they are only grown, never shrunk, so a
/// steady-state run allocates nothing.
#[derive(Debug, Default)]
#[allow(dead_code)] // which fields are used depends on the kernel sets compiled in
pub(crate) struct Work {
    /// im2col columns of a block; the scratch row of the aarch64 in-place form's strided
    /// interleave; a depthwise form's scratch.
    pub(crate) cols: Vec<i8>,
    /// im2col's row segments: `[oy, first ox, end ox, offset in the block]`.
    pub(crate) segs: Vec<[usize; 4]>,
    /// The panels of an in-place convolution: `[input offset, output column, columns]`.
    pub(crate) panels: Vec<[usize; 3]>,
    /// A depthwise i16 plane (the portable form, also AVX2's).
    pub(crate) packed: Vec<i16>,
    /// Depthwise int8 planes (the ARM forms, AVX-512 VNNI's).
    pub(crate) packed8: Vec<i8>,
    /// A row block of weights widened to i16 pairs.
    pub(crate) wide: Vec<u32>,
    /// A dense task's packed columns, in any set's layout (int8 layouts take two bytes an
    /// element), when each task packs its own.
    pub(crate) block: Vec<i16>,
    /// Depthwise tap offsets.
    pub(crate) offsets: Vec<usize>,
    /// One padded depthwise row before it is dealt into column phases.
    pub(crate) row: Vec<i16>,
}

thread_local! {
    static WORK: std::cell::RefCell<Work> = std::cell::RefCell::new(Work::default());
    /// An input prepared once per run by the calling thread (an in-place convolution's
    /// channel-interleaved input) and read by every task.
    static SHARED: std::cell::RefCell<Vec<i8>> = const { std::cell::RefCell::new(Vec::new()) };
    /// A layer's packed column blocks, packed once by a job of the calling thread and read by
    /// the tasks of the next (a dense layer split into several row blocks).
    static PACKED: std::cell::RefCell<Vec<i16>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's task buffers.
#[inline(always)]
pub(crate) fn with_work<R>(f: impl FnOnce(&mut Work) -> R) -> R {
    WORK.with(|w| f(&mut w.borrow_mut()))
}

/// Runs `f` with this thread's packed-columns buffer (see [`PACKED`]).
#[inline(always)]
pub(crate) fn with_packed<R>(f: impl FnOnce(&mut Vec<i16>) -> R) -> R {
    PACKED.with(|b| f(&mut b.borrow_mut()))
}

/// Runs `f` with this thread's shared-input buffer (see [`SHARED`]).
#[inline(always)]
pub(crate) fn with_shared<R>(f: impl FnOnce(&mut Vec<i8>) -> R) -> R {
    SHARED.with(|b| f(&mut b.borrow_mut()))
}

/// Runs independent tasks `0..n`, maybe on several threads: the kernels split their work into
/// tasks writing disjoint parts of the output, and the caller decides where they run.
pub trait Parallel: Sync {
    /// How many threads the tasks may run on (the kernels make at least that many tasks).
    fn threads(&self) -> usize;
    /// Runs `task(i)` for every `i` in `0..n`, returning when all are done.
    fn run(&self, n: usize, task: &(dyn Fn(usize) + Sync));
}

/// Every task on the calling thread, in order.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sequential;

impl Parallel for Sequential {
    fn threads(&self) -> usize {
        1
    }
    fn run(&self, n: usize, task: &(dyn Fn(usize) + Sync)) {
        let _job = super::marks::Job::begin();
        (0..n).for_each(|i| super::marks::task(task, i))
    }
}

/// Runs `f(i, chunk)` for each chunk `i` of `chunk` elements of `y` (the last may be shorter),
/// as the tasks of one job of `par`.
pub(crate) fn par_chunks_mut<T: Send>(y: &mut [T], chunk: usize, par: &dyn Parallel, f: &(dyn Fn(usize, &mut [T]) + Sync)) {
    let (len, chunk) = (y.len(), chunk.max(1));
    let out = Out::new(y);
    par.run(len.div_ceil(chunk), &|i| {
        let start = i * chunk;
        // SAFETY: chunk `i` is task `i`'s alone, and within `y`.
        f(i, unsafe { out.slice(start, chunk.min(len - start)) })
    })
}

/// The output of a kernel, written by tasks at disjoint ranges (int8 unless said otherwise).
pub(crate) struct Out<T = i8> {
    ptr: *mut T,
    len: usize,
}

impl<T> Clone for Out<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Out<T> {}

// SAFETY: tasks write disjoint ranges (each kernel documents its split) and the buffer outlives
// the `Parallel::run` call that uses it.
unsafe impl<T: Send> Send for Out<T> {}
// SAFETY: as for `Send`: shared between tasks that write disjoint ranges.
unsafe impl<T: Send> Sync for Out<T> {}

impl<T> Out<T> {
    pub(crate) fn new(y: &mut [T]) -> Self {
        Out { ptr: y.as_mut_ptr(), len: y.len() }
    }

    /// The start of the buffer and its length, for kernels that check a whole range once and
    /// then write with pointers (the same contract as [`slice`](Self::slice)).
    #[allow(dead_code)] // used by the ARM kernels
    pub(crate) fn raw(&self) -> (*mut T, usize) {
        (self.ptr, self.len)
    }

    /// The same buffer from `start` on (a GEMM writing rows from `start / n` on).
    #[allow(dead_code)] // used by the ARM kernels
    pub(crate) fn from(&self, start: usize) -> Out<T> {
        assert!(start <= self.len, "output offset {start} past its {} elements", self.len);
        // SAFETY: in bounds (checked).
        Out { ptr: unsafe { self.ptr.add(start) }, len: self.len - start }
    }

    /// # Safety
    /// No other task may access `start..start + len` while the slice lives.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn slice(&self, start: usize, len: usize) -> &mut [T] {
        assert!(start + len <= self.len);
        // SAFETY: in bounds (checked), disjoint by the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), len) }
    }
}
