//! Prometheus text output (version 0.0.4), for `serve`'s and a worker's `/metrics`.

use freshet_engine::histogram::Histogram;
use std::fmt::Write;

/// Prometheus text output, one family at a time.
#[derive(Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// Starts a family: its HELP and TYPE lines.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    /// A histogram's `_bucket` (cumulative, with `le`), `_sum` and `_count` samples.
    pub fn histogram(&mut self, name: &str, view: &str, h: &Histogram) {
        for (bound, count) in h.cumulative() {
            let le = bound.map_or("+Inf".to_string(), |ms| (ms as f64 / 1000.0).to_string());
            self.sample(
                &format!("{name}_bucket"),
                &[("view", view), ("le", &le)],
                count as f64,
            );
        }
        self.sample(
            &format!("{name}_sum"),
            &[("view", view)],
            h.sum_ms as f64 / 1000.0,
        );
        self.sample(&format!("{name}_count"), &[("view", view)], h.count as f64);
    }

    /// One sample of the current family.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// The whole text.
    pub fn finish(self) -> String {
        self.out
    }
}

/// Label values escape backslash, double quote and newline.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_written_in_the_text_format() {
        let mut e = Exposition::default();
        e.family("freshet_view_lag_events", "gauge", "Lag.");
        e.sample("freshet_view_lag_events", &[("view", "a\"b\\c")], 3.0);
        e.sample("freshet_views_up_ratio", &[], 1.0);
        assert_eq!(
            e.finish(),
            "# HELP freshet_view_lag_events Lag.\n# TYPE freshet_view_lag_events gauge\n\
             freshet_view_lag_events{view=\"a\\\"b\\\\c\"} 3\nfreshet_views_up_ratio 1\n"
        );
    }
}
