//! Sparklines as text, so they fit in table cells: one block character per column.

const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// Squeezes or stretches `values` to `width` columns (each column the mean of the values it
/// covers; `None` for a column with no value).
pub fn resample(values: &[Option<f64>], width: usize) -> Vec<Option<f64>> {
    if values.is_empty() || width == 0 {
        return vec![None; width];
    }
    let n = values.len();
    (0..width)
        .map(|col| {
            let start = col * n / width;
            let end = ((col + 1) * n / width).max(start + 1).min(n);
            let (sum, count) = values[start..end]
                .iter()
                .flatten()
                .fold((0.0, 0usize), |(s, c), v| (s + v, c + 1));
            (count > 0).then(|| sum / count as f64)
        })
        .collect()
}

/// A sparkline of `values` in `width` columns, scaled to `max` (the largest value when
/// `None`) from zero; columns without a value are blank, right-aligned so the newest is at
/// the end.
pub fn line(values: &[Option<f64>], width: usize, max: Option<f64>) -> String {
    scaled(values, width, Some(0.0), max)
}

/// Like [`line`], scaled from `min` (the smallest value when `None`) to `max`, so small
/// changes of a large value (latency, request rate) show.
pub fn scaled(values: &[Option<f64>], width: usize, min: Option<f64>, max: Option<f64>) -> String {
    let cols = resample(values, width.min(values.len().max(1)));
    let top = max
        .or_else(|| cols.iter().flatten().copied().reduce(f64::max))
        .unwrap_or(0.0);
    let bottom = min
        .or_else(|| cols.iter().flatten().copied().reduce(f64::min))
        .unwrap_or(0.0);
    let mut out = " ".repeat(width.saturating_sub(cols.len()));
    for v in cols {
        out.push(match v {
            None => ' ',
            // A flat series sits in the middle when scaled to itself, at the floor from 0.
            Some(_) if top <= bottom && bottom > 0.0 => BARS[3],
            Some(_) if top <= bottom => BARS[0],
            Some(v) => {
                let ratio = ((v - bottom) / (top - bottom)).clamp(0.0, 1.0);
                BARS[(ratio * (BARS.len() - 1) as f64).round() as usize]
            }
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resamples_by_mean() {
        let v: Vec<Option<f64>> = [1.0, 3.0, 5.0, 7.0].into_iter().map(Some).collect();
        assert_eq!(resample(&v, 2), [Some(2.0), Some(6.0)]);
        assert_eq!(resample(&v, 8).len(), 8);
        assert_eq!(resample(&[], 3), [None, None, None]);
    }

    #[test]
    fn draws_scaled_blocks_right_aligned() {
        let v = [Some(0.0), Some(50.0), None, Some(100.0)];
        assert_eq!(line(&v, 4, Some(100.0)), "▁▅ █");
        assert_eq!(line(&v, 6, Some(100.0)), "  ▁▅ █");
        assert_eq!(line(&[Some(0.0)], 2, None), " ▁");
        assert_eq!(scaled(&[Some(10.0), Some(20.0)], 2, None, None), "▁█");
        assert_eq!(scaled(&[Some(5.0), Some(5.0)], 2, None, None), "▄▄");
    }
}
