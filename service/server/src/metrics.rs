//! Prometheus metrics: request counters and latency histograms by route
//! template, and the gauges `/metrics` adds, rendered as text.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// A gauge to render: name, help, and (labels, value) series.
pub type Gauge<'a> = (&'a str, &'a str, Vec<(String, f64)>);

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// Request counters and latency histograms, by route template.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<(String, String), Histogram>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    pub fn observe(&self, method: &str, route: &str, status: u16, secs: f64) {
        *self.requests.lock().expect("metrics lock").entry((method.into(), route.into(), status)).or_default() += 1;
        let mut l = self.latency.lock().expect("metrics lock");
        let h = l.entry((method.into(), route.into())).or_default();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.counts[i] += 1;
            }
        }
        h.sum += secs;
        h.count += 1;
    }

    /// The Prometheus text exposition (version 0.0.4).
    pub fn render(&self, gauges: &[Gauge]) -> String {
        let mut out = String::new();
        out.push_str("# HELP tundra_http_requests_total HTTP requests answered, by route and status.\n");
        out.push_str("# TYPE tundra_http_requests_total counter\n");
        for ((m, r, s), n) in self.requests.lock().expect("metrics lock").iter() {
            let _ =
                writeln!(out, "tundra_http_requests_total{{method=\"{m}\",route=\"{}\",status=\"{s}\"}} {n}", esc(r));
        }
        out.push_str("# HELP tundra_http_request_duration_seconds Time to answer, by route.\n");
        out.push_str("# TYPE tundra_http_request_duration_seconds histogram\n");
        for ((m, r), h) in self.latency.lock().expect("metrics lock").iter() {
            let labels = format!("method=\"{m}\",route=\"{}\"", esc(r));
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ =
                    writeln!(out, "tundra_http_request_duration_seconds_bucket{{{labels},le=\"{b}\"}} {}", h.counts[i]);
            }
            let _ = writeln!(out, "tundra_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "tundra_http_request_duration_seconds_sum{{{labels}}} {}", h.sum);
            let _ = writeln!(out, "tundra_http_request_duration_seconds_count{{{labels}}} {}", h.count);
        }
        for (name, help, series) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for (labels, v) in series {
                if labels.is_empty() {
                    let _ = writeln!(out, "{name} {v}");
                } else {
                    let _ = writeln!(out, "{name}{{{labels}}} {v}");
                }
            }
        }
        out
    }
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.observe("GET", "/v1/projects", 200, 0.003);
        m.observe("GET", "/v1/projects", 200, 0.2);
        let t = m.render(&[("tundra_images", "Images by status.", vec![("status=\"active\"".into(), 2.0)])]);
        assert!(
            t.contains("tundra_http_requests_total{method=\"GET\",route=\"/v1/projects\",status=\"200\"} 2"),
            "{t}"
        );
        assert!(t.contains("le=\"0.005\"} 1"), "{t}");
        assert!(t.contains("le=\"+Inf\"} 2"), "{t}");
        assert!(t.contains("tundra_images{status=\"active\"} 2"), "{t}");
    }
}
