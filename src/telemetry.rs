//! The exporter's own telemetry: the counters and histograms the watcher and the scans update as
//! they work. Only the values live here; `http::metrics` registers them and writes them out, so
//! the watcher can count without depending on the exposition.

use std::borrow::Cow;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

/// One bounded label, such as `kind="full"`.
pub type KindLabel = [(&'static str, &'static str); 1];

/// Counters and histograms the daemon updates as it works. Clones share the values.
#[derive(Clone, Debug)]
pub struct Telemetry {
    pub scans: Family<KindLabel, Counter>,
    pub scan_duration: Family<KindLabel, Histogram>,
    pub artifact_errors: Family<KindLabel, Counter>,
    pub watch_events: Counter,
    /// `iacwatch_transitions_total{from,to}`: statuses, or `none` for appearing and vanishing.
    pub transitions: Family<EdgeLabels, Counter>,
    /// `iacwatch_remote_requests_total{root,operation}`: requests sent to S3 and DynamoDB.
    pub remote_requests: Family<RemoteLabels, Counter>,
    /// `iacwatch_remote_request_errors_total{root,operation}`: those answered with an error
    /// status or not answered at all.
    pub remote_request_errors: Family<RemoteLabels, Counter>,
}

/// `root` (a configured root's URL or label, so bounded) and `operation` of a remote request.
pub type RemoteLabels = [(&'static str, Cow<'static, str>); 2];

/// The operations of `iacwatch_remote_requests_total`: one each request (retries counted).
pub const REMOTE_OPERATIONS: [&str; 6] = ["list", "get", "get_not_modified", "lock_table_scan", "put", "delete"];

/// `from` and `to` of a transition.
pub type EdgeLabels = [(&'static str, &'static str); 2];

impl Default for Telemetry {
    fn default() -> Self {
        let telemetry = Telemetry {
            scans: Family::default(),
            scan_duration: Family::new_with_constructor(|| {
                Histogram::new([
                    0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                ])
            }),
            artifact_errors: Family::default(),
            watch_events: Counter::default(),
            transitions: Family::default(),
            remote_requests: Family::default(),
            remote_request_errors: Family::default(),
        };
        for kind in ["full", "incremental"] {
            // Present from the start, so that rate() has a zero to begin with.
            let _ = telemetry.scans.get_or_create(&[("kind", kind)]);
            let _ = telemetry.scan_duration.get_or_create(&[("kind", kind)]);
        }
        telemetry
    }
}

impl Telemetry {
    /// A scan of `kind` (`full` or `incremental`) finished after `seconds`.
    pub fn scan_done(&self, kind: &'static str, seconds: f64) {
        self.scans.get_or_create(&[("kind", kind)]).inc();
        self.scan_duration.get_or_create(&[("kind", kind)]).observe(seconds);
    }

    /// `count` more transitions from `from` to `to` (`None`: `none`).
    pub fn transitions(&self, from: Option<crate::model::Status>, to: Option<crate::model::Status>, count: u64) {
        let name = |s: Option<crate::model::Status>| s.map_or("none", |s| s.as_str());
        self.transitions
            .get_or_create(&[("from", name(from)), ("to", name(to))])
            .inc_by(count);
    }

    /// The counters of the requests made for `root`, each operation present from the start at 0.
    pub fn remote(&self, root: &str) -> RemoteRequests {
        let requests = self.remote_requests.clone();
        let errors = self.remote_request_errors.clone();
        let root: Cow<'static, str> = Cow::Owned(root.to_owned());
        for operation in REMOTE_OPERATIONS {
            let labels = [("root", root.clone()), ("operation", Cow::Borrowed(operation))];
            let _ = requests.get_or_create(&labels);
            if operation != "get_not_modified" {
                let _ = errors.get_or_create(&labels);
            }
        }
        RemoteRequests { root, requests, errors }
    }

    /// Artifacts newly found unreadable, by bounded kind.
    pub fn artifact_errors(&self, kinds: &[&'static str]) {
        for kind in kinds {
            self.artifact_errors.get_or_create(&[("kind", kind)]).inc();
        }
    }
}

/// The request counters of one remote root, as the S3 source's HTTP layer updates them.
#[derive(Clone, Debug)]
pub struct RemoteRequests {
    root: Cow<'static, str>,
    requests: Family<RemoteLabels, Counter>,
    errors: Family<RemoteLabels, Counter>,
}

impl RemoteRequests {
    /// One request of `operation` (one of `REMOTE_OPERATIONS`) was sent; `failed`: it was answered
    /// with an error status, or not answered.
    pub fn count(&self, operation: &'static str, failed: bool) {
        let labels = [("root", self.root.clone()), ("operation", Cow::Borrowed(operation))];
        self.requests.get_or_create(&labels).inc();
        if failed {
            self.errors.get_or_create(&labels).inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_remote_requests_by_root_and_operation() {
        let telemetry = Telemetry::default();
        let remote = telemetry.remote("s3://tfstate/prod");
        remote.count("list", false);
        remote.count("list", false);
        remote.count("get", true);
        let value = |family: &Family<RemoteLabels, Counter>, op: &'static str| {
            family
                .get_or_create(&[("root", "s3://tfstate/prod".into()), ("operation", op.into())])
                .get()
        };
        assert_eq!(value(&telemetry.remote_requests, "list"), 2);
        assert_eq!(value(&telemetry.remote_requests, "get"), 1);
        assert_eq!(value(&telemetry.remote_request_errors, "get"), 1);
        assert_eq!(value(&telemetry.remote_request_errors, "list"), 0);
        assert_eq!(
            value(&telemetry.remote_requests, "lock_table_scan"),
            0,
            "present at zero"
        );
    }
}
