//! Prometheus metrics, served in the text format on `--metrics-bind` (docs/operations.md).
//!
//! One set per process, reached through [`get`]: the request gate, the database's writer and
//! readers and the background workers count into it where things happen, and the scrape fills
//! in what is cheaper to read when asked (backlogs from the database, open streams, process
//! memory). Built on `prometheus-client`, the Prometheus project's own Rust client, so the
//! exposition follows the format exactly.

use std::sync::OnceLock;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

/// The content type of what [`render`] writes.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// A request, as counted: its method, its route (the API's operation id, or the kind of page
/// for what is not an API operation, so the number of series stays bounded) and status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `GET`, `POST`, … (`OTHER` for the rest).
    pub method: &'static str,
    /// The operation id (`list_deals`), or `web`, `mcp`, `health`, `docs`, `unmatched`.
    pub route: &'static str,
    /// The answer's status code.
    pub status: u16,
}

/// A request's latency series: method and route.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// As in [`RequestLabels`].
    pub method: &'static str,
    /// As in [`RequestLabels`].
    pub route: &'static str,
}

/// One label, for the families keyed by a state or an outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Of {
    /// The state or outcome.
    pub of: &'static str,
}

/// An email attempt: whether a campaign sent it, and how it went.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EmailLabels {
    /// `campaign` (a campaign step's email) or `inbox` (sent from a deal's inbox).
    pub kind: &'static str,
    /// `sent`, `retry` or `failed`.
    pub outcome: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric the server keeps.
pub struct Metrics {
    registry: Registry,
    /// Requests answered.
    pub requests: Family<RequestLabels, Counter>,
    /// Their latency.
    pub request_seconds: Histograms<RouteLabels>,
    /// Writes queued for the writer thread and not yet taken up.
    pub write_queue: Gauge,
    /// How long each group commit took (its sync included).
    pub commit_seconds: Histogram,
    /// How long a read waited for a reader thread.
    pub read_wait_seconds: Histogram,
    /// Webhook delivery attempts by outcome.
    pub webhook_attempts: Family<Of, Counter>,
    /// Email sending attempts by kind and outcome.
    pub email_attempts: Family<EmailLabels, Counter>,
    /// Webhook deliveries waiting (`pending`) or under way (`in_flight`), read at each scrape.
    pub webhook_backlog: Family<Of, Gauge>,
    /// Outbound emails waiting (`queued`) or under way (`sending`), read at each scrape.
    pub email_backlog: Family<Of, Gauge>,
    /// Event streams open (API and web app), read at each scrape.
    pub sse_open: Gauge,
}

/// Latency buckets from 0.5 ms to 10 s: the API answers most reads in a millisecond or two
/// and a slow export in seconds.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

impl Metrics {
    fn new() -> Self {
        let m = Metrics {
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(latency_histogram),
            write_queue: Gauge::default(),
            commit_seconds: latency_histogram(),
            read_wait_seconds: latency_histogram(),
            webhook_attempts: Family::default(),
            email_attempts: Family::default(),
            webhook_backlog: Family::default(),
            email_backlog: Family::default(),
            sse_open: Gauge::default(),
            registry: Registry::default(),
        };
        let mut root = Registry::default();
        // The process's own, under the names every Prometheus client uses.
        root.register_collector(Box::new(Process));
        let r = root.sub_registry_with_prefix("clozup");
        r.register(
            "http_requests",
            "HTTP requests answered",
            m.requests.clone(),
        );
        r.register_with_unit(
            "http_request_duration",
            "Time from a request's arrival to its answer",
            Unit::Seconds,
            m.request_seconds.clone(),
        );
        r.register(
            "db_write_queue_depth",
            "Writes waiting for the writer thread",
            m.write_queue.clone(),
        );
        r.register_with_unit(
            "db_commit_duration",
            "Time of one group commit, its sync included",
            Unit::Seconds,
            m.commit_seconds.clone(),
        );
        r.register_with_unit(
            "db_read_wait",
            "Time a read waited for a reader thread",
            Unit::Seconds,
            m.read_wait_seconds.clone(),
        );
        r.register(
            "webhook_attempts",
            "Webhook delivery attempts, by outcome (delivered; retry: refused for now; gone: 410, the endpoint is disabled; refused: its address is in a refused range)",
            m.webhook_attempts.clone(),
        );
        r.register(
            "email_attempts",
            "Email sending attempts, by kind (campaign, inbox) and outcome (sent, retry, failed)",
            m.email_attempts.clone(),
        );
        r.register(
            "webhook_backlog",
            "Webhook deliveries not yet done, by state (pending, in_flight)",
            m.webhook_backlog.clone(),
        );
        r.register(
            "email_backlog",
            "Outbound emails not yet sent, by state (queued, sending)",
            m.email_backlog.clone(),
        );
        r.register("sse_streams_open", "Event streams open", m.sse_open.clone());
        r.register(
            "build",
            "The running version",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        Metrics {
            registry: root,
            ..m
        }
    }
}

/// The process's resident memory and CPU time, read from `/proc/self` at each scrape.
#[derive(Debug)]
struct Process;

impl Collector for Process {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some((resident, cpu)) = process_figures() else {
            return Ok(());
        };
        let gauge = ConstGauge::new(resident);
        gauge.encode(encoder.encode_descriptor(
            "process_resident_memory",
            "Resident memory size",
            Some(&Unit::Bytes),
            gauge.metric_type(),
        )?)?;
        let counter = ConstCounter::new(cpu);
        counter.encode(encoder.encode_descriptor(
            "process_cpu",
            "User and system CPU time spent",
            Some(&Unit::Seconds),
            counter.metric_type(),
        )?)
    }
}

/// The process's metrics.
pub fn get() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// Everything, in the Prometheus text format.
pub fn render() -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &get().registry);
    out
}

/// Resident bytes and CPU seconds from `/proc/self` (Linux).
fn process_figures() -> Option<(i64, f64)> {
    // SAFETY: sysconf only reads configuration.
    let (page, ticks) = unsafe {
        (
            libc::sysconf(libc::_SC_PAGESIZE),
            libc::sysconf(libc::_SC_CLK_TCK),
        )
    };
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let resident_pages: i64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name (which may hold spaces) start at field 3; utime and
    // stime are fields 14 and 15.
    let after_name = &stat[stat.rfind(')')? + 2..];
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    // `c_long` is 32 bits on armv7, 64 on the others.
    #[allow(clippy::unnecessary_cast)]
    let page = page as i64;
    Some((resident_pages * page, (utime + stime) / ticks as f64))
}

/// A method's label.
pub fn method_label(method: &poem::http::Method) -> &'static str {
    use poem::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PATCH => "PATCH",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_every_family_with_its_type() {
        let m = get();
        m.requests
            .get_or_create(&RequestLabels {
                method: "GET",
                route: "list_deals",
                status: 200,
            })
            .inc();
        m.commit_seconds.observe(0.003);
        let text = render();
        for line in [
            "# TYPE clozup_http_requests_total counter",
            "clozup_http_requests_total{method=\"GET\",route=\"list_deals\",status=\"200\"}",
            "# TYPE clozup_db_commit_duration_seconds histogram",
            "clozup_db_commit_duration_seconds_bucket{le=\"0.005\"}",
            "# TYPE process_resident_memory_bytes gauge",
            "# TYPE process_cpu_seconds_total counter",
            "clozup_build_info{version=",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        let resident: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
            .unwrap()
            .parse()
            .unwrap();
        assert!(resident > 1e6, "{resident}");
    }
}
