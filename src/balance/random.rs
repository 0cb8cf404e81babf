//! Weighted random: each pick draws an endpoint with probability
//! proportional to its weight. O(1) with Vose's alias table (built once per
//! endpoint set); the random numbers come from `fastrand`'s thread-local
//! generator, so concurrent picks share nothing.

use super::cache::PerSet;
use super::{eligible, Balance, EndpointSet, Tried};

/// Draws that land on an ineligible endpoint before falling back to a scan.
pub(super) const DRAWS: usize = 4;

#[derive(Default)]
pub struct Random {
    table: PerSet<Alias>,
}

/// Vose's alias method: draw a column uniformly, keep it with probability
/// `keep[i] / 2^32`, else take `alias[i]`.
struct Alias {
    /// Empty when all weights are equal (a uniform draw is enough).
    keep: Vec<u32>,
    alias: Vec<u32>,
}

impl Alias {
    fn build(set: &EndpointSet) -> Alias {
        let weights: Vec<f64> = set
            .endpoints
            .iter()
            .map(|e| f64::from(e.weight.max(1)))
            .collect();
        let n = weights.len();
        if weights.windows(2).all(|w| w[0] == w[1]) {
            return Alias {
                keep: Vec::new(),
                alias: Vec::new(),
            };
        }
        let total: f64 = weights.iter().sum();
        let mut scaled: Vec<f64> = weights.iter().map(|w| w * n as f64 / total).collect();
        let mut keep = vec![u32::MAX; n];
        let mut alias: Vec<u32> = (0..n as u32).collect();
        let (mut small, mut large): (Vec<usize>, Vec<usize>) =
            (0..n).partition(|&i| scaled[i] < 1.0);
        while let (Some(s), Some(&l)) = (small.pop(), large.last()) {
            keep[s] = (scaled[s] * 4_294_967_296.0).min(u32::MAX as f64) as u32;
            alias[s] = l as u32;
            scaled[l] -= 1.0 - scaled[s];
            if scaled[l] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        // What is left (rounding) keeps its own column: keep = MAX, alias = self.
        Alias { keep, alias }
    }

    #[inline]
    fn draw(&self, n: usize) -> usize {
        let i = fastrand::usize(..n);
        if self.keep.is_empty() || fastrand::u32(..) < self.keep[i] {
            i
        } else {
            self.alias[i] as usize
        }
    }
}

impl Balance for Random {
    fn pick(&self, set: &EndpointSet, tried: &Tried, _key: Option<u64>) -> Option<usize> {
        let n = set.endpoints.len();
        if n == 0 {
            return None;
        }
        self.table.with(set, Alias::build, |table| {
            for _ in 0..DRAWS {
                let i = table.draw(n);
                if eligible(&set.endpoints[i], tried) {
                    return Some(i);
                }
            }
            scan_from_random(set, tried)
        })
    }
}

/// The first eligible endpoint from a random place: for when most are not.
pub(super) fn scan_from_random(set: &EndpointSet, tried: &Tried) -> Option<usize> {
    let n = set.endpoints.len();
    let start = fastrand::usize(..n);
    (start..n)
        .chain(0..start)
        .find(|&i| eligible(&set.endpoints[i], tried))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{assert_weight_shares, endpoints};
    use super::*;

    /// The property: weight shares within ±2 points over 10,000 picks.
    #[test]
    fn weight_shares_within_two_points() {
        fastrand::seed(7);
        for weights in [&[1u32, 2, 3, 4, 10][..], &[1, 1, 1], &[1, 1000], &[5, 3]] {
            assert_weight_shares(&Random::default(), weights, "random");
        }
    }

    #[test]
    fn alias_table_is_exact() {
        let set = endpoints(&[1, 2, 3, 4]);
        let t = Alias::build(&set);
        // Probability mass of each endpoint over all columns.
        let mut mass = [0f64; 4];
        for i in 0..4 {
            let keep = f64::from(t.keep[i]) / 4_294_967_296.0;
            mass[i] += keep / 4.0;
            mass[t.alias[i] as usize] += (1.0 - keep) / 4.0;
        }
        for (i, m) in mass.iter().enumerate() {
            assert!((m - (i + 1) as f64 / 10.0).abs() < 1e-6, "{mass:?}");
        }
    }
}
