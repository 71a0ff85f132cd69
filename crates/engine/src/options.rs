//! A view's options (`CREATE VIEW v WITH (...)`), parsed and validated once.

use crate::error::{EngineError, Result};
use freshet_streams::duration::{format_duration, parse_duration};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What happens to an event later than the watermark plus `allowed_lateness`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LatePolicy {
    /// Counted and discarded.
    Drop,
    /// Kept in the store's `freshet_late_events` table with the reason.
    DeadLetter,
    /// The window is re-opened from its retained state and its row amended.
    Update,
}

/// When a windowed view writes rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmitPolicy {
    /// Once per window, when it is final.
    OnWindowClose,
    /// Provisional rows every `emit_interval` while the window is open, then the final row.
    OnUpdate,
}

/// How the view asks to be run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModeChoice {
    /// The planner chooses from the SLA and the measured costs, and re-evaluates.
    #[default]
    Auto,
    /// Always this mode.
    Streaming,
    /// Always micro-batch (period from the planner).
    MicroBatch,
    /// Always batch (period from the planner, at least 15 minutes).
    Batch,
}

/// Validated view options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewOptions {
    /// The freshness SLA.
    pub freshness_ms: u64,
    /// How long after the watermark passes a window's end its result may still change.
    pub allowed_lateness_ms: u64,
    /// The late-data policy.
    pub late_data: LatePolicy,
    /// The emit policy.
    pub emit: EmitPolicy,
    /// Interval of provisional updates under `emit = 'on_update'`.
    pub emit_interval_ms: u64,
    /// Cap on the view's operator state.
    pub state_bytes_max: u64,
    /// How to run the view (`mode = 'auto'` by default).
    #[serde(default)]
    pub mode: ModeChoice,
    /// `state_ttl`: how long a join keeps an appended row after it arrives, by the streams'
    /// watermark; until the end of the streams if `None`.
    #[serde(default)]
    pub state_ttl_ms: Option<u64>,
    /// How often `serve` reconciles the view's last period of finalised windows in batch
    /// (`reconcile_every`); never if `None`.
    #[serde(default)]
    pub reconcile_every_ms: Option<u64>,
}

impl Default for ViewOptions {
    fn default() -> Self {
        ViewOptions {
            freshness_ms: 1_000,
            allowed_lateness_ms: 0,
            late_data: LatePolicy::DeadLetter,
            emit: EmitPolicy::OnWindowClose,
            emit_interval_ms: 1_000,
            state_bytes_max: freshet_types::limits::VIEW_STATE_BYTES_DEFAULT,
            mode: ModeChoice::Auto,
            reconcile_every_ms: None,
            state_ttl_ms: None,
        }
    }
}

fn duration_ms(key: &str, value: &str) -> Result<u64> {
    parse_duration(value)
        .map(|d| d.as_millis() as u64)
        .map_err(|e| EngineError::Sql(format!("view option {key}: {e}")))
}

impl ViewOptions {
    /// Build from `key = 'value'` pairs, rejecting unknown keys and bad values by name.
    pub fn from_pairs(pairs: &[(String, String)]) -> Result<ViewOptions> {
        let mut o = ViewOptions::default();
        for (key, value) in pairs {
            match key.as_str() {
                "freshness" => o.freshness_ms = duration_ms(key, value)?.max(1),
                "allowed_lateness" => o.allowed_lateness_ms = duration_ms(key, value)?,
                "emit_interval" => o.emit_interval_ms = duration_ms(key, value)?.max(1),
                "late_data" => {
                    o.late_data = match value.as_str() {
                        "drop" => LatePolicy::Drop,
                        "dead_letter" => LatePolicy::DeadLetter,
                        "update" => LatePolicy::Update,
                        other => {
                            return Err(EngineError::Sql(format!(
                                "view option late_data: '{other}' is not one of \
                                 drop, dead_letter, update"
                            )));
                        }
                    }
                }
                "emit" => {
                    o.emit = match value.as_str() {
                        "on_window_close" => EmitPolicy::OnWindowClose,
                        "on_update" => EmitPolicy::OnUpdate,
                        other => {
                            return Err(EngineError::Sql(format!(
                                "view option emit: '{other}' is not one of \
                                 on_window_close, on_update"
                            )));
                        }
                    }
                }
                "state_ttl" => match duration_ms(key, value)? {
                    0 => {
                        return Err(EngineError::Sql(
                            "view option state_ttl: must be longer than 0".into(),
                        ));
                    }
                    ms => o.state_ttl_ms = Some(ms),
                },
                "reconcile_every" => {
                    o.reconcile_every_ms = Some(duration_ms(key, value)?.max(1_000));
                }
                "mode" => {
                    o.mode = match value.as_str() {
                        "auto" => ModeChoice::Auto,
                        "streaming" => ModeChoice::Streaming,
                        "micro_batch" => ModeChoice::MicroBatch,
                        "batch" => ModeChoice::Batch,
                        other => {
                            return Err(EngineError::Sql(format!(
                                "view option mode: '{other}' is not one of \
                                 auto, streaming, micro_batch, batch"
                            )));
                        }
                    }
                }
                "state_bytes_max" => {
                    o.state_bytes_max = value.parse().map_err(|_| {
                        EngineError::Sql(format!(
                            "view option state_bytes_max: '{value}' is not a number of bytes"
                        ))
                    })?
                }
                other => {
                    return Err(EngineError::Sql(format!(
                        "unknown view option '{other}'; known: freshness, allowed_lateness, \
                         late_data, emit, emit_interval, state_bytes_max, state_ttl, mode, \
                         reconcile_every"
                    )));
                }
            }
        }
        if o.state_ttl_ms.is_some() && o.reconcile_every_ms.is_some() {
            return Err(EngineError::Sql(
                "view options state_ttl and reconcile_every: a view that forgets rows departs \
                 from the batch result by design, so reconciling it would report (and repair) \
                 what it forgot; choose one"
                    .into(),
            ));
        }
        Ok(o)
    }

    /// One line for `DESCRIBE VIEW`.
    pub fn describe(&self) -> String {
        let d = |ms: u64| format_duration(Duration::from_millis(ms));
        let ttl = self
            .state_ttl_ms
            .map(|ms| format!(" state_ttl={}", d(ms)))
            .unwrap_or_default();
        format!(
            "freshness={} allowed_lateness={} late_data={} emit={} emit_interval={} \
             state_bytes_max={}{ttl} mode={}",
            d(self.freshness_ms),
            d(self.allowed_lateness_ms),
            serde_json::to_value(self.late_data)
                .map(|v| v.as_str().unwrap_or_default().to_string())
                .unwrap_or_default(),
            serde_json::to_value(self.emit)
                .map(|v| v.as_str().unwrap_or_default().to_string())
                .unwrap_or_default(),
            d(self.emit_interval_ms),
            self.state_bytes_max,
            serde_json::to_value(self.mode)
                .map(|v| v.as_str().unwrap_or_default().to_string())
                .unwrap_or_default()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_the_issue_example() {
        let o = ViewOptions::from_pairs(&pairs(&[
            ("freshness", "2s"),
            ("allowed_lateness", "10s"),
            ("late_data", "dead_letter"),
        ]))
        .unwrap();
        assert_eq!(o.freshness_ms, 2_000);
        assert_eq!(o.allowed_lateness_ms, 10_000);
        assert_eq!(o.late_data, LatePolicy::DeadLetter);
    }

    #[test]
    fn unknown_and_bad_values_are_named() {
        let e = ViewOptions::from_pairs(&pairs(&[("fresh", "2s")])).unwrap_err();
        assert!(e.to_string().contains("unknown view option 'fresh'"), "{e}");
        let e = ViewOptions::from_pairs(&pairs(&[("late_data", "keep")])).unwrap_err();
        assert!(e.to_string().contains("'keep'"), "{e}");
    }
}
