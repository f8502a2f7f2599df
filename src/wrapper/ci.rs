//! Which CI run is this? Reads the variables that CI systems set for every job and names the run,
//! the pipeline and a link to it, for `lock.json`. Pure: the environment comes in as a function.
//!
//! Only identifiers and links are taken, never a token, and a link loses any `user:password@` and
//! any query parameter that looks like a credential.

/// What a CI system says about the run it is in. Every field may be missing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CiRun {
    /// The CI system's name (for messages only).
    pub system: Option<&'static str>,
    pub run_id: Option<String>,
    pub pipeline: Option<String>,
    pub url: Option<String>,
}

/// Reads the run from the environment, trying GitHub Actions, GitLab CI, Jenkins, Azure Pipelines,
/// CircleCI, Buildkite and Harness in that order; the first whose marker variable is set wins.
pub fn detect(env: impl Fn(&str) -> Option<String>) -> CiRun {
    let var = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let run = if var("GITHUB_ACTIONS").is_some() || var("GITHUB_RUN_ID").is_some() {
        github(&var)
    } else if var("GITLAB_CI").is_some() || var("CI_PIPELINE_ID").is_some() {
        CiRun {
            system: Some("GitLab CI"),
            run_id: var("CI_PIPELINE_ID").or_else(|| var("CI_JOB_ID")),
            pipeline: var("CI_PROJECT_PATH"),
            url: var("CI_JOB_URL").or_else(|| var("CI_PIPELINE_URL")),
        }
    } else if var("JENKINS_URL").is_some() || (var("BUILD_URL").is_some() && var("JOB_NAME").is_some()) {
        CiRun {
            system: Some("Jenkins"),
            run_id: var("BUILD_ID").or_else(|| var("BUILD_NUMBER")),
            pipeline: var("JOB_NAME"),
            url: var("BUILD_URL"),
        }
    } else if var("TF_BUILD").is_some() || var("BUILD_BUILDID").is_some() {
        azure(&var)
    } else if var("CIRCLECI").is_some() || var("CIRCLE_BUILD_NUM").is_some() {
        CiRun {
            system: Some("CircleCI"),
            run_id: var("CIRCLE_WORKFLOW_ID").or_else(|| var("CIRCLE_BUILD_NUM")),
            pipeline: var("CIRCLE_PROJECT_REPONAME"),
            url: var("CIRCLE_BUILD_URL"),
        }
    } else if var("BUILDKITE").is_some() || var("BUILDKITE_BUILD_ID").is_some() {
        CiRun {
            system: Some("Buildkite"),
            run_id: var("BUILDKITE_BUILD_ID"),
            pipeline: var("BUILDKITE_PIPELINE_SLUG"),
            url: var("BUILDKITE_BUILD_URL"),
        }
    } else if var("HARNESS_BUILD_ID").is_some() || var("HARNESS_PIPELINE_ID").is_some() {
        CiRun {
            system: Some("Harness"),
            run_id: var("HARNESS_BUILD_ID").or_else(|| var("HARNESS_EXECUTION_ID")),
            pipeline: var("HARNESS_PIPELINE_ID"),
            url: var("HARNESS_EXECUTION_URL"),
        }
    } else {
        CiRun::default()
    };
    CiRun {
        url: run.url.as_deref().and_then(safe_url),
        ..run
    }
}

fn github(var: &impl Fn(&str) -> Option<String>) -> CiRun {
    let run_id = var("GITHUB_RUN_ID");
    let url = match (var("GITHUB_SERVER_URL"), var("GITHUB_REPOSITORY"), &run_id) {
        (Some(server), Some(repo), Some(id)) => {
            Some(format!("{}/{}/actions/runs/{id}", server.trim_end_matches('/'), repo))
        }
        _ => None,
    };
    CiRun {
        system: Some("GitHub Actions"),
        run_id,
        pipeline: var("GITHUB_WORKFLOW"),
        url,
    }
}

fn azure(var: &impl Fn(&str) -> Option<String>) -> CiRun {
    let run_id = var("BUILD_BUILDID");
    let url = match (var("SYSTEM_COLLECTIONURI"), var("SYSTEM_TEAMPROJECT"), &run_id) {
        (Some(collection), Some(project), Some(id)) => Some(format!(
            "{}/{}/_build/results?buildId={id}",
            collection.trim_end_matches('/'),
            project.replace(' ', "%20")
        )),
        _ => None,
    };
    CiRun {
        system: Some("Azure Pipelines"),
        run_id,
        pipeline: var("BUILD_DEFINITIONNAME"),
        url,
    }
}

pub use crate::artifact::url::safe_url;

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        move |name| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn nothing_outside_ci() {
        assert_eq!(detect(env_of(&[("HOME", "/root")])), CiRun::default());
    }

    #[test]
    fn github_actions_builds_the_run_link() {
        let run = detect(env_of(&[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_RUN_ID", "1234"),
            ("GITHUB_WORKFLOW", "deploy-prod"),
            ("GITHUB_SERVER_URL", "https://github.com/"),
            ("GITHUB_REPOSITORY", "acme/infra"),
            ("GITHUB_TOKEN", "ghs_secret"),
        ]));
        assert_eq!(run.run_id.as_deref(), Some("1234"));
        assert_eq!(run.pipeline.as_deref(), Some("deploy-prod"));
        assert_eq!(
            run.url.as_deref(),
            Some("https://github.com/acme/infra/actions/runs/1234")
        );
    }

    #[test]
    fn gitlab_prefers_the_pipeline_id_and_the_job_link() {
        let run = detect(env_of(&[
            ("GITLAB_CI", "true"),
            ("CI_PIPELINE_ID", "77"),
            ("CI_JOB_ID", "901"),
            ("CI_PROJECT_PATH", "acme/infra"),
            (
                "CI_JOB_URL",
                "https://gitlab-ci-token:glcbt-xyz@gitlab.example/acme/infra/-/jobs/901",
            ),
        ]));
        assert_eq!(run.run_id.as_deref(), Some("77"));
        assert_eq!(run.pipeline.as_deref(), Some("acme/infra"));
        assert_eq!(run.url.as_deref(), Some("https://gitlab.example/acme/infra/-/jobs/901"));
    }

    #[test]
    fn jenkins_azure_circleci_buildkite_harness() {
        let jenkins = detect(env_of(&[
            ("JENKINS_URL", "https://ci.example/"),
            ("BUILD_NUMBER", "42"),
            ("JOB_NAME", "infra/main"),
            ("BUILD_URL", "https://admin:pw@ci.example/job/infra/job/main/42/"),
        ]));
        assert_eq!(jenkins.run_id.as_deref(), Some("42"));
        assert_eq!(
            jenkins.url.as_deref(),
            Some("https://ci.example/job/infra/job/main/42/")
        );
        let azure = detect(env_of(&[
            ("TF_BUILD", "True"),
            ("BUILD_BUILDID", "314"),
            ("BUILD_DEFINITIONNAME", "infra"),
            ("SYSTEM_COLLECTIONURI", "https://dev.azure.com/acme/"),
            ("SYSTEM_TEAMPROJECT", "Platform Team"),
        ]));
        assert_eq!(
            azure.url.as_deref(),
            Some("https://dev.azure.com/acme/Platform%20Team/_build/results?buildId=314")
        );
        let circle = detect(env_of(&[
            ("CIRCLECI", "true"),
            ("CIRCLE_BUILD_NUM", "9"),
            ("CIRCLE_WORKFLOW_ID", "wf-1"),
            ("CIRCLE_PROJECT_REPONAME", "infra"),
        ]));
        assert_eq!(circle.run_id.as_deref(), Some("wf-1"));
        let buildkite = detect(env_of(&[
            ("BUILDKITE", "true"),
            ("BUILDKITE_BUILD_ID", "b-1"),
            ("BUILDKITE_PIPELINE_SLUG", "infra"),
            ("BUILDKITE_AGENT_ACCESS_TOKEN", "secret"),
        ]));
        assert_eq!(buildkite.pipeline.as_deref(), Some("infra"));
        let harness = detect(env_of(&[("HARNESS_BUILD_ID", "5"), ("HARNESS_PIPELINE_ID", "deploy")]));
        assert_eq!(
            (harness.run_id.as_deref(), harness.pipeline.as_deref()),
            (Some("5"), Some("deploy"))
        );
    }

    #[test]
    fn links_lose_credentials() {
        assert_eq!(
            safe_url("https://u:p@ci.example/run/1?tab=logs&access_token=x&sig=y#l2").as_deref(),
            Some("https://ci.example/run/1?tab=logs#l2")
        );
        assert_eq!(safe_url("ftp://ci.example/x"), None);
        assert_eq!(safe_url("not a link"), None);
        assert_eq!(safe_url("https://@/x"), None);
    }
}
