//! Experiments: which variant wins. A variant wins when every variant has at least the minimum
//! sample and the variant with the best conversion rate beats each other variant in a
//! one-sided two-proportion z-test (pooled variance) at the configured confidence. The holdout
//! group is reported for lift but does not compete. Pure arithmetic; the engine keeps the
//! counts and asks after every assignment and conversion.

use serde::Serialize;

/// One variant's counts so far.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VariantCounts {
    pub name: String,
    pub entered: u64,
    pub converted: u64,
}

impl VariantCounts {
    pub fn rate(&self) -> f64 {
        if self.entered == 0 {
            0.0
        } else {
            self.converted as f64 / self.entered as f64
        }
    }
}

/// The best variant against one other.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Comparison {
    pub against: String,
    pub z: f64,
    /// One-sided p-value that the best is no better than `against`.
    pub p_value: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// The variant with the best conversion rate so far (ties: the first listed).
    pub leader: Option<String>,
    pub comparisons: Vec<Comparison>,
    /// Every variant has reached the minimum sample.
    pub enough_data: bool,
    /// Set when the leader wins: enough data and every p-value below `1 - confidence`.
    pub winner: Option<String>,
}

/// The verdict over the competing variants (not the holdout).
pub fn decide(variants: &[VariantCounts], min_sample: u64, confidence: f64) -> Verdict {
    let leader = variants
        .iter()
        .enumerate()
        .max_by(|(i, a), (j, b)| a.rate().total_cmp(&b.rate()).then(j.cmp(i)))
        .map(|(_, v)| v);
    let Some(leader) = leader else {
        return Verdict {
            leader: None,
            comparisons: Vec::new(),
            enough_data: false,
            winner: None,
        };
    };
    let comparisons: Vec<Comparison> = variants
        .iter()
        .filter(|v| v.name != leader.name)
        .map(|other| {
            let z = z_score(leader, other);
            Comparison {
                against: other.name.clone(),
                z,
                p_value: 1.0 - normal_cdf(z),
            }
        })
        .collect();
    let enough_data = variants.len() >= 2 && variants.iter().all(|v| v.entered >= min_sample);
    let alpha = 1.0 - confidence;
    let winner =
        (enough_data && comparisons.iter().all(|c| c.p_value < alpha)).then(|| leader.name.clone());
    Verdict {
        leader: Some(leader.name.clone()),
        comparisons,
        enough_data,
        winner,
    }
}

/// The Wilson score interval of a conversion rate at `confidence` (two-sided, e.g. 0.95):
/// (low, high). Unlike the normal approximation it stays within 0..1 and is sound for small
/// samples and rates near 0. `None` without entries.
pub fn wilson_interval(converted: u64, entered: u64, confidence: f64) -> Option<(f64, f64)> {
    if entered == 0 {
        return None;
    }
    let n = entered as f64;
    let p = converted.min(entered) as f64 / n;
    let z = normal_quantile(1.0 - (1.0 - confidence) / 2.0);
    let z2 = z * z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = z / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    // At 0 or 1 conversions out of all the bound is exactly 0 (1); rounding would say 1e-17.
    let low = if converted == 0 {
        0.0
    } else {
        (centre - half).max(0.0)
    };
    let high = if converted >= entered {
        1.0
    } else {
        (centre + half).min(1.0)
    };
    Some((low, high))
}

/// A variant against the holdout (who got nothing): the relative lift of its conversion rate
/// and the one-sided p-value that it converts no better than the holdout.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Lift {
    /// variant rate / holdout rate - 1 (`null` when the holdout converted nobody).
    pub relative: Option<f64>,
    /// variant rate - holdout rate.
    pub absolute: f64,
    pub p_value: f64,
}

/// The lift of `variant` over `holdout`; `None` when either has no entries.
pub fn lift(variant: &VariantCounts, holdout: &VariantCounts) -> Option<Lift> {
    if variant.entered == 0 || holdout.entered == 0 {
        return None;
    }
    let z = z_score(variant, holdout);
    Some(Lift {
        relative: (holdout.converted > 0).then(|| variant.rate() / holdout.rate() - 1.0),
        absolute: variant.rate() - holdout.rate(),
        p_value: 1.0 - normal_cdf(z),
    })
}

/// The z with `normal_cdf(z) == p` (0 < p < 1), by bisection: exact to 1e-9, plenty here.
pub fn normal_quantile(p: f64) -> f64 {
    let p = p.clamp(1e-12, 1.0 - 1e-12);
    let (mut low, mut high) = (-10.0_f64, 10.0_f64);
    for _ in 0..80 {
        let mid = (low + high) / 2.0;
        if normal_cdf(mid) < p {
            low = mid;
        } else {
            high = mid;
        }
    }
    (low + high) / 2.0
}

/// Two-proportion z statistic of `a` over `b` with the pooled proportion; 0 when undefined.
fn z_score(a: &VariantCounts, b: &VariantCounts) -> f64 {
    let (na, nb) = (a.entered as f64, b.entered as f64);
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    let pooled = (a.converted + b.converted) as f64 / (na + nb);
    let se = (pooled * (1.0 - pooled) * (1.0 / na + 1.0 / nb)).sqrt();
    if se == 0.0 {
        return 0.0;
    }
    (a.rate() - b.rate()) / se
}

/// The standard normal CDF, through erf (Abramowitz and Stegun 7.1.26, absolute error below
/// 1.5e-7, ample for a significance threshold).
pub fn normal_cdf(z: f64) -> f64 {
    0.5 * (1.0 + erf(z / std::f64::consts::SQRT_2))
}

fn erf(x: f64) -> f64 {
    let sign = if x < 0.0 { -1.0 } else { 1.0 };
    let x = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    sign * (1.0 - poly * (-x * x).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(name: &str, entered: u64, converted: u64) -> VariantCounts {
        VariantCounts {
            name: name.into(),
            entered,
            converted,
        }
    }

    #[test]
    fn intervals_and_lift_over_the_holdout() {
        assert!((normal_quantile(0.975) - 1.959_964).abs() < 1e-5);
        // 10 of 100 at 95%: Wilson gives 0.0552 to 0.1744.
        let (low, high) = wilson_interval(10, 100, 0.95).unwrap();
        assert!(
            (low - 0.0552).abs() < 5e-4 && (high - 0.1744).abs() < 5e-4,
            "{low} {high}"
        );
        let (low, high) = wilson_interval(0, 20, 0.95).unwrap();
        assert_eq!(low, 0.0);
        assert!(high > 0.1 && high < 0.2, "{high}");
        assert_eq!(wilson_interval(0, 0, 0.95), None);
        let l = lift(&v("a", 1000, 120), &v("holdout", 1000, 80)).unwrap();
        assert!((l.relative.unwrap() - 0.5).abs() < 1e-9);
        assert!((l.absolute - 0.04).abs() < 1e-9);
        assert!(l.p_value < 0.01, "{}", l.p_value);
        assert_eq!(
            lift(&v("a", 10, 1), &v("holdout", 10, 0)).unwrap().relative,
            None
        );
        assert_eq!(lift(&v("a", 10, 1), &v("holdout", 0, 0)), None);
    }

    #[test]
    fn normal_cdf_matches_known_values() {
        for (z, p) in [
            (0.0, 0.5),
            (1.0, 0.841_344_7),
            (1.644_853_6, 0.95),
            (-1.96, 0.024_997_9),
        ] {
            assert!((normal_cdf(z) - p).abs() < 1e-6, "{z}: {}", normal_cdf(z));
        }
    }

    #[test]
    fn a_clear_difference_with_enough_data_wins() {
        // 20% against 10% on 200 each: z = 2.80, one-sided p = 0.0026.
        let verdict = decide(&[v("a", 200, 20), v("b", 200, 40)], 100, 0.95);
        assert_eq!(verdict.leader.as_deref(), Some("b"));
        assert!(
            (verdict.comparisons[0].z - 2.80).abs() < 0.01,
            "{verdict:?}"
        );
        assert_eq!(verdict.winner.as_deref(), Some("b"));
    }

    #[test]
    fn too_little_data_or_too_little_difference_does_not() {
        assert_eq!(
            decide(&[v("a", 50, 5), v("b", 50, 20)], 100, 0.95).winner,
            None
        );
        assert_eq!(
            decide(&[v("a", 200, 20), v("b", 200, 25)], 100, 0.95).winner,
            None
        );
        // Every other variant must lose, not just one.
        let three = decide(
            &[v("a", 300, 30), v("b", 300, 60), v("c", 300, 55)],
            100,
            0.95,
        );
        assert_eq!(three.leader.as_deref(), Some("b"));
        assert_eq!(three.winner, None, "{three:?}");
        assert_eq!(decide(&[], 1, 0.95).winner, None);
        assert_eq!(decide(&[v("only", 500, 100)], 1, 0.95).winner, None);
    }
}
