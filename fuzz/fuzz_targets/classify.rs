//! The classifier on arbitrary evidence: artifacts parsed from fuzzed bytes (or left out), any
//! times, any holder, any policy. It must always answer, with a status and at least one reason.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use chrono::{DateTime, TimeDelta, Utc};
use iacwatch::artifact::{marker, plan, state, tflock};
use iacwatch::classify::{Policy, classify};
use iacwatch::evidence::{Artifact, Evidence, Holder, Observed, StateReading};

fn time(u: &mut Unstructured) -> arbitrary::Result<DateTime<Utc>> {
    let base = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().to_utc();
    Ok(base + TimeDelta::milliseconds(i64::from(i32::arbitrary(u)?) * 10))
}

fn holder(u: &mut Unstructured) -> arbitrary::Result<Holder> {
    Ok(*u.choose(&[Holder::Alive, Holder::Gone, Holder::Unknown])?)
}

fn artifact<T>(u: &mut Unstructured, content: T) -> arbitrary::Result<Artifact<T>> {
    Ok(Artifact {
        path: "ws/file".into(),
        modified: time(u)?,
        content,
    })
}

fn bytes<'a>(u: &mut Unstructured<'a>) -> arbitrary::Result<&'a [u8]> {
    let len = u.int_in_range(0..=2048)?;
    u.bytes(len.min(u.len()))
}

fn evidence(u: &mut Unstructured) -> arbitrary::Result<Evidence> {
    let mut evidence = Evidence::default();
    if bool::arbitrary(u)? {
        let data = bytes(u)?;
        let reading = match state::parse_on(data, 1) {
            _ if data.is_empty() => StateReading::Empty,
            Ok(meta) => StateReading::Parsed(std::sync::Arc::new(meta)),
            Err(err) => StateReading::Unreadable(err),
        };
        evidence.state = Some(artifact(u, reading)?);
    }
    if bool::arbitrary(u)? {
        evidence.previous_state = state::parse_on(bytes(u)?, 1).ok().map(std::sync::Arc::new);
    }
    if bool::arbitrary(u)? {
        let content = tflock::parse(bytes(u)?);
        let holder = holder(u)?;
        evidence.terraform_lock = Some(Box::new(artifact(u, Observed { content, holder })?));
    }
    if bool::arbitrary(u)? {
        let content = marker::parse_lock(bytes(u)?);
        let holder = holder(u)?;
        evidence.pipeline_lock = Some(Box::new(artifact(u, Observed { content, holder })?));
    }
    if bool::arbitrary(u)? {
        let content = marker::parse_last_run(bytes(u)?);
        evidence.last_run = Some(Box::new(artifact(u, content)?));
    }
    for _ in 0..u.int_in_range(0..=3)? {
        let content = plan::parse(bytes(u)?);
        evidence.plans.push(artifact(u, content)?);
    }
    if bool::arbitrary(u)? {
        evidence.errored_state = Some(Box::new(artifact(u, ())?));
    }
    if bool::arbitrary(u)? {
        evidence.crash_log = Some(Box::new(artifact(u, ())?));
    }
    if bool::arbitrary(u)? {
        evidence.newest_config = Some(artifact(u, ())?);
    }
    if bool::arbitrary(u)? {
        evidence.backend = Some(u.choose(&["local", "s3", "remote", ""])?.to_string());
    }
    Ok(evidence)
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(evidence) = evidence(&mut u) else { return };
    let (Ok(now), Ok(stale), Ok(settle)) = (time(&mut u), u32::arbitrary(&mut u), u16::arbitrary(&mut u)) else {
        return;
    };
    let policy = Policy {
        stale_lock_after: std::time::Duration::from_secs(u64::from(stale)),
        settle_time: std::time::Duration::from_millis(u64::from(settle)),
    };
    let verdict = classify(&evidence, now, &policy);
    assert!(!verdict.reasons.is_empty(), "a verdict without a reason: {verdict:?}");
});
