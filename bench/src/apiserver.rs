//! The API server's request counts (`apiserver_request_total` from its `/metrics`), summed by
//! verb and resource, so a run can report how many requests it caused.

use std::collections::BTreeMap;

use anyhow::Context;

/// Requests by `"VERB resource[/subresource]"`.
pub type RequestCounts = BTreeMap<String, u64>;

/// Scrapes the API server's metrics with `client` (which must be allowed `/metrics`).
pub async fn request_counts(client: &kube::Client) -> anyhow::Result<RequestCounts> {
    let request = http::Request::get("/metrics")
        .body(Vec::new())
        .context("building the /metrics request")?;
    let text = client
        .request_text(request)
        .await
        .context("scraping the API server's /metrics")?;
    Ok(parse(&text))
}

/// Sums `apiserver_request_total` samples by verb and resource/subresource.
pub fn parse(text: &str) -> RequestCounts {
    let mut counts = RequestCounts::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once('}') else {
            continue;
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        let label = |name: &str| label_value(labels, name).unwrap_or_default();
        let (resource, sub) = (label("resource"), label("subresource"));
        let what = match (resource.is_empty(), sub.is_empty()) {
            (true, _) => "(non-resource)".to_string(),
            (false, true) => resource,
            (false, false) => format!("{resource}/{sub}"),
        };
        *counts
            .entry(format!("{} {what}", label("verb")))
            .or_default() += value as u64;
    }
    counts
}

fn label_value(labels: &str, name: &str) -> Option<String> {
    let start = labels.find(&format!("{name}=\""))? + name.len() + 2;
    let len = labels[start..].find('"')?;
    Some(labels[start..start + len].to_string())
}

/// `after - before`, dropping keys that did not change.
pub fn delta(before: &RequestCounts, after: &RequestCounts) -> RequestCounts {
    after
        .iter()
        .filter_map(|(k, v)| {
            let d = v.saturating_sub(before.get(k).copied().unwrap_or(0));
            (d > 0).then(|| (k.clone(), d))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
# TYPE apiserver_request_total counter
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="",verb="POST",version="v1"} 10
apiserver_request_total{code="409",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="",verb="POST",version="v1"} 2
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="status",verb="PATCH",version="v1"} 7
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="",scope="",subresource="/readyz",verb="GET",version=""} 3
"#;

    #[test]
    fn sums_by_verb_and_resource() {
        let c = parse(SAMPLE);
        assert_eq!(c.get("POST pods"), Some(&12));
        assert_eq!(c.get("PATCH pods/status"), Some(&7));
        assert_eq!(c.get("GET (non-resource)"), Some(&3));
    }

    #[test]
    fn delta_keeps_changes_only() {
        let before = parse(SAMPLE);
        let mut after = before.clone();
        *after.entry("PATCH pods/status".into()).or_default() += 5;
        let d = delta(&before, &after);
        assert_eq!(d.len(), 1);
        assert_eq!(d.get("PATCH pods/status"), Some(&5));
    }
}
