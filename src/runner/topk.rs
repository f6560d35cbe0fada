//! Top-K selection without allocation (a `heapless::Vec`), NaN-safe.

use heapless::Vec as HVec;

/// Largest K the runner keeps.
pub const MAX_TOP_K: usize = 32;

/// One predicted class.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    /// Class index.
    pub index: usize,
    /// Score (probability or logit).
    pub score: f32,
}

/// The K best classes, best first.
pub type TopK = HVec<Prediction, MAX_TOP_K>;

/// Fills `out` with the `k` (≤ [`MAX_TOP_K`]) highest scores, best first; ties keep the lower
/// index first. NaN scores rank below every number, so they never displace a real class.
pub fn top_k(scores: &[f32], k: usize, out: &mut TopK) {
    out.clear();
    let k = k.min(MAX_TOP_K).min(scores.len());
    if k == 0 {
        return;
    }
    let key = |s: f32| if s.is_nan() { f32::NEG_INFINITY } else { s };
    for (index, &score) in scores.iter().enumerate() {
        let p = Prediction { index, score };
        if out.len() == k {
            match out.last() {
                Some(last) if key(score).total_cmp(&key(last.score)).is_gt() => {
                    out.pop();
                }
                _ => continue,
            }
        }
        let pos = out.iter().position(|q| key(score).total_cmp(&key(q.score)).is_gt()).unwrap_or(out.len());
        // Cannot fail: len < k ≤ capacity here.
        let _ = out.insert(pos, p);
    }
}

/// Replaces logits by softmax probabilities (max-subtracted, so large logits do not overflow).
pub fn softmax_in_place(v: &mut [f32]) {
    let m = v.iter().copied().filter(|x| !x.is_nan()).fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for x in v.iter_mut() {
        *x = if x.is_nan() { 0.0 } else { (*x - m).exp() };
        sum += *x;
    }
    if sum > 0.0 && sum.is_finite() {
        for x in v.iter_mut() {
            *x /= sum;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn nan_never_wins() {
        let mut t = TopK::new();
        top_k(&[f32::NAN, 1.0, 3.0, f32::NAN, 2.0], 2, &mut t);
        assert_eq!(t.iter().map(|p| p.index).collect::<std::vec::Vec<_>>(), [2, 4]);
        top_k(&[1.0, 1.0, 0.5], 3, &mut t);
        assert_eq!(t.iter().map(|p| p.index).collect::<std::vec::Vec<_>>(), [0, 1, 2]);
        top_k(&[], 5, &mut t);
        assert!(t.is_empty());
    }

    proptest! {
        #[test]
        fn matches_a_full_sort(v in proptest::collection::vec(-1e3f32..1e3, 0..200), k in 0usize..40) {
            let mut t = TopK::new();
            top_k(&v, k, &mut t);
            let mut idx: std::vec::Vec<usize> = (0..v.len()).collect();
            idx.sort_by(|&a, &b| v[b].total_cmp(&v[a]).then(a.cmp(&b)));
            let want: std::vec::Vec<usize> = idx.into_iter().take(k.min(MAX_TOP_K)).collect();
            prop_assert_eq!(t.iter().map(|p| p.index).collect::<std::vec::Vec<_>>(), want);
        }

        #[test]
        fn softmax_sums_to_one(mut v in proptest::collection::vec(-1e4f32..1e4, 1..100)) {
            softmax_in_place(&mut v);
            let s: f32 = v.iter().sum();
            prop_assert!((s - 1.0).abs() < 1e-4 && v.iter().all(|x| (0.0..=1.0).contains(x)));
        }
    }
}
