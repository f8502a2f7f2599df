//! The classifier at its boundaries: the stale limit, the settle time, ties of modification times.

use super::*;
use crate::artifact::ParseError;
use crate::artifact::marker::{LastRun, Operation, Outcome, PipelineLock};
use crate::artifact::plan::{Changes, PlanSummary};
use crate::artifact::tflock::{LockOperation, TerraformLock};
use crate::evidence::{Artifact, Holder, Observed, Stamp, StateReading};
use crate::model::Status;

fn meta_with_resources() -> std::sync::Arc<StateMeta> {
    let state = br#"{"version":4,"serial":1,"lineage":"l","resources":[{"mode":"managed","type":"t","name":"n","instances":[{"attributes":{}}]}]}"#;
    std::sync::Arc::new(crate::artifact::state::parse(state).unwrap())
}

/// Found by the in-place rewrite torture test: the 0-byte moment of a rewrite read as no state.
#[test]
fn an_empty_state_mid_rewrite_keeps_the_previous_reading_until_it_settles() {
    let written = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().to_utc();
    let evidence = Evidence {
        state: Some(Artifact {
            path: "ws/terraform.tfstate".into(),
            modified: written,
            content: StateReading::Empty,
        }),
        previous_state: Some(meta_with_resources()),
        ..Evidence::default()
    };
    let policy = Policy::default();
    let during = classify(&evidence, written + TimeDelta::milliseconds(500), &policy);
    assert_eq!(during.status, Status::Active);
    assert!(during.reasons.iter().any(|r| r.code == ReasonCode::StateSettling));
    let after = classify(&evidence, written + TimeDelta::seconds(10), &policy);
    assert_eq!(after.status, Status::Inactive);
    let never_read = Evidence {
        previous_state: None,
        ..evidence
    };
    assert_eq!(classify(&never_read, written, &policy).status, Status::Inactive);
}

// Builders of evidence at chosen times.

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().to_utc()
}

fn ms(n: i64) -> TimeDelta {
    TimeDelta::milliseconds(n)
}

fn codes(verdict: &Verdict) -> Vec<ReasonCode> {
    verdict.reasons.iter().map(|r| r.code).collect()
}

fn state_at(modified: DateTime<Utc>, content: StateReading) -> Option<Artifact<StateReading>> {
    Some(Artifact {
        path: "ws/terraform.tfstate".into(),
        modified,
        content,
    })
}

fn active_state_at(modified: DateTime<Utc>) -> Option<Artifact<StateReading>> {
    state_at(modified, StateReading::Parsed(meta_with_resources()))
}

fn pipeline_lock(started_at: DateTime<Utc>) -> Option<Box<Artifact<Observed<PipelineLock>>>> {
    let lock = PipelineLock {
        operation: Operation::Provision,
        started_at,
        pid: Some(4242),
        host: Some("runner-1".into()),
        run_id: None,
        pipeline: None,
        url: None,
    };
    Some(Box::new(Artifact {
        path: "ws/.iacwatch/default/lock.json".into(),
        modified: started_at,
        content: Observed {
            content: Ok(lock),
            holder: Holder::Alive,
        },
    }))
}

fn terraform_lock(created: DateTime<Utc>) -> Option<Box<Artifact<Observed<TerraformLock>>>> {
    let lock = TerraformLock {
        id: None,
        operation: LockOperation::Apply,
        who: None,
        version: None,
        created: Some(created),
    };
    Some(Box::new(Artifact {
        path: "ws/.terraform.tfstate.lock.info".into(),
        modified: created,
        content: Observed {
            content: Ok(lock),
            holder: Holder::Alive,
        },
    }))
}

fn pending_plan(path: &str, modified: DateTime<Utc>) -> Artifact<Result<PlanSummary, ParseError>> {
    Artifact {
        path: path.into(),
        modified,
        content: Ok(PlanSummary {
            format_version: Some("0.2".into()),
            terraform_version: Some("1.0.3".into()),
            errored: false,
            drifted_resources: 0,
            changes: Changes {
                create: 1,
                ..Changes::default()
            },
            output_changes: 0,
        }),
    }
}

fn last_run(outcome: Outcome, modified: DateTime<Utc>) -> Option<Box<Artifact<Result<LastRun, ParseError>>>> {
    let run = LastRun {
        operation: Operation::Provision,
        outcome,
        exit_code: Some(if outcome == Outcome::Succeeded { 0 } else { 1 }),
        started_at: None,
        finished_at: None,
        run_id: None,
    };
    Some(Box::new(Artifact {
        path: "ws/.iacwatch/default/last-run.json".into(),
        modified,
        content: Ok(run),
    }))
}

fn stamp(path: &str, modified: DateTime<Utc>) -> Option<Box<Stamp>> {
    Some(Box::new(Artifact {
        path: path.into(),
        modified,
        content: (),
    }))
}

// The stale limit: a lock is stale from the very instant it reaches the limit.

#[test]
fn a_pipeline_lock_is_live_just_below_the_stale_limit_and_stale_at_and_above_it() {
    let policy = Policy::default();
    let limit = t0() + delta(policy.stale_lock_after);
    let evidence = Evidence {
        state: active_state_at(t0()),
        pipeline_lock: pipeline_lock(t0()),
        ..Evidence::default()
    };
    let below = classify(&evidence, limit - ms(1), &policy);
    assert_eq!(below.status, Status::Provisioning);
    assert_eq!(below.pipeline_lock, Some(LockState::Live));
    assert!(codes(&below).contains(&ReasonCode::PipelineLock));
    assert_eq!(below.recheck_at, Some(limit), "re-checked when it turns stale");
    for now in [limit, limit + ms(1)] {
        let stale = classify(&evidence, now, &policy);
        assert_eq!(stale.status, Status::Failed, "at {now}");
        assert_eq!(stale.pipeline_lock, Some(LockState::Stale), "at {now}");
        assert!(codes(&stale).contains(&ReasonCode::StaleLock), "at {now}");
        assert!(!codes(&stale).contains(&ReasonCode::PipelineLock), "at {now}");
        assert_eq!(stale.recheck_at, None, "at {now}");
    }
}

#[test]
fn a_terraform_lock_is_live_just_below_the_stale_limit_and_stale_at_and_above_it() {
    let policy = Policy {
        stale_lock_after: std::time::Duration::from_secs(30 * 60),
        ..Policy::default()
    };
    let limit = t0() + delta(policy.stale_lock_after);
    let evidence = Evidence {
        state: active_state_at(t0()),
        terraform_lock: terraform_lock(t0()),
        ..Evidence::default()
    };
    let below = classify(&evidence, limit - ms(1), &policy);
    assert_eq!(below.status, Status::Provisioning);
    assert_eq!(below.terraform_lock, Some(LockState::Live));
    assert_eq!(below.recheck_at, Some(limit));
    assert!(!codes(&below).contains(&ReasonCode::StaleLock));
    for now in [limit, limit + ms(1)] {
        let stale = classify(&evidence, now, &policy);
        assert_eq!(stale.status, Status::Failed, "at {now}");
        assert_eq!(stale.terraform_lock, Some(LockState::Stale), "at {now}");
        assert_eq!(
            codes(&stale),
            [ReasonCode::StaleLock, ReasonCode::StateHasResources],
            "at {now}"
        );
        assert!(stale.flags.locked, "a stale lock is still a lock");
    }
}

// The settle time: a state that cannot be read is presumed mid-write until the settle time has
// passed since it was written, and from that very instant it is what it is.

#[test]
fn an_unreadable_state_settles_just_below_the_settle_time_and_fails_at_and_above_it() {
    let policy = Policy::default();
    let settled = t0() + delta(policy.settle_time);
    let evidence = Evidence {
        state: state_at(
            t0(),
            StateReading::Unreadable(ParseError::Truncated { line: 1, column: 9 }),
        ),
        previous_state: Some(meta_with_resources()),
        ..Evidence::default()
    };
    let below = classify(&evidence, settled - ms(1), &policy);
    assert_eq!(below.status, Status::Active, "the previous reading stands");
    assert!(codes(&below).contains(&ReasonCode::StateSettling));
    assert_eq!(below.recheck_at, Some(settled));
    for now in [settled, settled + ms(1)] {
        let after = classify(&evidence, now, &policy);
        assert_eq!(after.status, Status::Failed, "at {now}");
        assert_eq!(codes(&after), [ReasonCode::StateUnreadable], "at {now}");
        assert_eq!(after.since, Some(t0()), "failed since the file was written");
        assert_eq!(after.recheck_at, None);
    }
}

#[test]
fn an_empty_state_keeps_the_previous_reading_just_below_the_settle_time_only() {
    let policy = Policy {
        settle_time: std::time::Duration::from_millis(500),
        ..Policy::default()
    };
    let settled = t0() + delta(policy.settle_time);
    let evidence = Evidence {
        state: state_at(t0(), StateReading::Empty),
        previous_state: Some(meta_with_resources()),
        ..Evidence::default()
    };
    let below = classify(&evidence, settled - ms(1), &policy);
    assert_eq!(below.status, Status::Active);
    assert_eq!(below.recheck_at, Some(settled));
    for now in [settled, settled + ms(1)] {
        let after = classify(&evidence, now, &policy);
        assert_eq!(after.status, Status::Inactive, "at {now}");
        assert_eq!(codes(&after), [ReasonCode::NoState], "at {now}");
    }
}

// Ties of modification times.

#[test]
fn a_plan_written_in_the_same_instant_as_the_state_or_the_config_is_current() {
    let policy = Policy::default();
    let now = t0() + TimeDelta::hours(1);
    let tie = Evidence {
        state: active_state_at(t0()),
        plans: vec![pending_plan("ws/plan.json", t0())],
        newest_config: stamp("ws/main.tf", t0()).map(|s| *s),
        ..Evidence::default()
    };
    let verdict = classify(&tie, now, &policy);
    assert_eq!(verdict.status, Status::ApplyNeeded);
    assert_eq!(verdict.plan, Some((0, true)));
    assert!(codes(&verdict).contains(&ReasonCode::PendingChanges));
    assert!(
        !codes(&verdict).contains(&ReasonCode::ConfigChanged),
        "a config as old as the state"
    );

    // One instant older than the state, or than the config: stale, and says nothing (times with
    // a fraction of a second, as a local file system has them).
    let at = t0() + ms(500);
    for (state, config) in [(at + ms(1), at), (at, at + ms(1))] {
        let older = Evidence {
            state: active_state_at(state),
            plans: vec![pending_plan("ws/plan.json", at)],
            newest_config: stamp("ws/main.tf", config).map(|s| *s),
            ..tie.clone()
        };
        let verdict = classify(&older, now, &policy);
        assert_eq!(verdict.plan, Some((0, false)), "state {state}, config {config}");
        assert!(codes(&verdict).contains(&ReasonCode::PlanStale));
        assert!(!codes(&verdict).contains(&ReasonCode::PendingChanges));
    }
}

#[test]
fn a_config_within_the_second_of_a_whole_second_state_or_plan_is_not_newer_than_it() {
    // An object store's Last-Modified has whole seconds: `terraform init` wrote the lock file at
    // .3 s, the apply put the state in the bucket at .7 s of the same second, which it dates .0.
    let policy = Policy::default();
    let now = t0() + TimeDelta::hours(1);
    let config = t0() + ms(300);
    let applied = Evidence {
        state: active_state_at(t0()),
        newest_config: stamp("ws/.terraform.lock.hcl", config).map(|s| *s),
        ..Evidence::default()
    };
    let verdict = classify(&applied, now, &policy);
    assert_eq!(verdict.status, Status::Active, "{:?}", codes(&verdict));
    let planned = Evidence {
        plans: vec![pending_plan("ws/plan.json", t0())],
        ..applied.clone()
    };
    assert_eq!(classify(&planned, now, &policy).plan, Some((0, true)));

    // A config in the next second is newer.
    let changed = Evidence {
        newest_config: stamp("ws/main.tf", t0() + ms(1_000)).map(|s| *s),
        ..applied
    };
    let verdict = classify(&changed, now, &policy);
    assert_eq!(verdict.status, Status::ApplyNeeded);
    assert!(codes(&verdict).contains(&ReasonCode::ConfigChanged));
    let planned = Evidence {
        plans: vec![pending_plan("ws/plan.json", t0())],
        ..changed
    };
    assert_eq!(classify(&planned, now, &policy).plan, Some((0, false)));
}

#[test]
fn of_two_plans_written_in_the_same_instant_the_last_path_is_the_plan() {
    let evidence = Evidence {
        state: active_state_at(t0()),
        plans: vec![pending_plan("ws/b.json", t0()), pending_plan("ws/a.json", t0())],
        ..Evidence::default()
    };
    let verdict = classify(&evidence, t0() + TimeDelta::hours(1), &Policy::default());
    assert_eq!(
        verdict.plan,
        Some((0, true)),
        "ws/b.json, the greater path, whatever the order"
    );
    let swapped = Evidence {
        plans: evidence.plans.iter().rev().cloned().collect(),
        ..evidence.clone()
    };
    assert_eq!(classify(&swapped, t0(), &Policy::default()).plan, Some((1, true)));
}

#[test]
fn a_failed_run_is_superseded_only_by_a_state_written_strictly_later() {
    let policy = Policy::default();
    let now = t0() + TimeDelta::hours(1);
    let tie = Evidence {
        state: active_state_at(t0()),
        last_run: last_run(Outcome::Failed, t0()),
        ..Evidence::default()
    };
    let verdict = classify(&tie, now, &policy);
    assert_eq!(
        verdict.status,
        Status::Failed,
        "a state of the same instant does not supersede"
    );
    assert!(codes(&verdict).contains(&ReasonCode::LastRunFailed));
    let later = Evidence {
        state: active_state_at(t0() + ms(1)),
        ..tie
    };
    let verdict = classify(&later, now, &policy);
    assert_eq!(verdict.status, Status::Active);
    assert!(!verdict.flags.failed);
}

#[test]
fn a_crash_in_the_same_instant_as_a_succeeded_run_stands() {
    let policy = Policy::default();
    let now = t0() + TimeDelta::hours(1);
    let tie = Evidence {
        state: active_state_at(t0() - TimeDelta::minutes(5)),
        last_run: last_run(Outcome::Succeeded, t0()),
        crash_log: stamp("ws/crash.log", t0()),
        errored_state: stamp("ws/errored.tfstate", t0()),
        ..Evidence::default()
    };
    let verdict = classify(&tie, now, &policy);
    assert_eq!(verdict.status, Status::Failed);
    assert!(codes(&verdict).contains(&ReasonCode::TerraformCrashed));
    assert!(codes(&verdict).contains(&ReasonCode::StatePersistFailed));
    let later = Evidence {
        last_run: last_run(Outcome::Succeeded, t0() + ms(1)),
        ..tie
    };
    assert_eq!(classify(&later, now, &policy).status, Status::Active);
}

#[test]
fn a_digest_mismatch_fails_only_once_it_has_lasted_the_settle_time() {
    let policy = Policy::default();
    let settled = t0() + delta(policy.settle_time);
    let evidence = Evidence {
        state: active_state_at(t0()),
        backend: Some("s3".into()),
        state_digest_mismatch: Some(t0()),
        ..Evidence::default()
    };
    for now in [t0(), settled - ms(1)] {
        let during = classify(&evidence, now, &policy);
        assert_eq!(
            during.status,
            Status::Active,
            "at {now}: between Terraform's two writes"
        );
        assert!(!codes(&during).contains(&ReasonCode::StateDigestMismatch), "at {now}");
        assert_eq!(during.recheck_at, Some(settled), "at {now}");
    }
    for now in [settled, settled + ms(1)] {
        let after = classify(&evidence, now, &policy);
        assert_eq!(after.status, Status::Failed, "at {now}");
        assert!(codes(&after).contains(&ReasonCode::StateDigestMismatch), "at {now}");
        assert_eq!(after.since, Some(t0()));
    }
    let matching = Evidence {
        state_digest_mismatch: None,
        ..evidence
    };
    assert_eq!(classify(&matching, settled, &policy).status, Status::Active);
}
