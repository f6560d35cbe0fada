//! Which kernel paths ran, for tests: kernels mark a path with `trace!("name")`, which
//! compiles to nothing outside `cfg(test)`; a test clears the marks, runs a layer on its own
//! thread and asserts the paths the plan and the tile constants say it must take, so a changed
//! constant or a planner decision that no longer reaches its kernel fails loudly.

use std::cell::RefCell;

thread_local! {
    static HITS: RefCell<Vec<(&'static str, usize)>> = const { RefCell::new(Vec::new()) };
}

/// Marks `name` as taken once more on this thread.
pub(crate) fn hit(name: &'static str) {
    HITS.with(|h| {
        let mut h = h.borrow_mut();
        match h.iter_mut().find(|(n, _)| *n == name) {
            Some((_, c)) => *c += 1,
            None => h.push((name, 1)),
        }
    })
}

/// The paths taken on this thread since the last call, cleared.
pub(crate) fn take() -> Vec<(&'static str, usize)> {
    HITS.with(|h| std::mem::take(&mut *h.borrow_mut()))
}

/// Whether `name` is among `hits`.
pub(crate) fn took(hits: &[(&'static str, usize)], name: &str) -> bool {
    hits.iter().any(|(n, _)| *n == name)
}
