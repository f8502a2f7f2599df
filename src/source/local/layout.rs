//! The names of the on-disk layout of a workspace directory: what Terraform and Terragrunt leave
//! there, the plan and configuration files, the `.iacwatch/<ws>/` marker folder the wrapper
//! writes, and which names can be CLI workspaces. The reader and the wrapper both take them from
//! here.

/// The local state of the `default` workspace.
pub const STATE: &str = "terraform.tfstate";
/// Terraform's lock file beside a local state.
pub const TERRAFORM_LOCK: &str = ".terraform.tfstate.lock.info";
/// The folder of the named workspaces' local states (`terraform.tfstate.d/<ws>/terraform.tfstate`).
pub const NAMED_STATES: &str = "terraform.tfstate.d";
/// Terraform's working folder (backend configuration, selected workspace, providers).
pub const DOT_TERRAFORM: &str = ".terraform";
/// Inside `.terraform/`: the selected workspace.
pub const ENVIRONMENT: &str = "environment";
/// Inside `.terraform/`: the backend configuration (same name as the local state).
pub const BACKEND: &str = "terraform.tfstate";
/// The state Terraform writes when it cannot persist to its backend.
pub const ERRORED_STATE: &str = "errored.tfstate";
/// The dependency lock file.
pub const DEPENDENCY_LOCK: &str = ".terraform.lock.hcl";
/// A Terragrunt unit's configuration.
pub const TERRAGRUNT: &str = "terragrunt.hcl";
/// Terragrunt's working copies.
pub const TERRAGRUNT_CACHE: &str = ".terragrunt-cache";

/// The pipeline markers: `.iacwatch/<ws>/` and the files in it (their names are the core's, shared
/// with the bucket's reader).
pub mod marker {
    pub use crate::artifact::marker::names::{DIR, LAST_RUN, LOCK, PLAN, STATE};
}

/// Folders that are never workspace directories of their own, nor hold any.
pub const PRUNED: [&str; 6] = [
    ".git",
    "node_modules",
    DOT_TERRAFORM,
    NAMED_STATES,
    marker::DIR,
    TERRAGRUNT_CACHE,
];

/// True when `name` (an entry directly inside a directory) makes that directory a workspace.
pub fn is_marker(name: &str, is_dir: bool) -> bool {
    if is_dir {
        [NAMED_STATES, DOT_TERRAFORM, marker::DIR].contains(&name)
    } else {
        [STATE, DEPENDENCY_LOCK, TERRAFORM_LOCK, ERRORED_STATE, TERRAGRUNT].contains(&name) || is_plan_json(name)
    }
}

/// `plan.json`, `tfplan.json`, `*.tfplan.json`, `*.plan.json`.
pub fn is_plan_json(name: &str) -> bool {
    name == "plan.json" || name == "tfplan.json" || name.ends_with(".tfplan.json") || name.ends_with(".plan.json")
}

/// True for file names that are configuration of a workspace directory.
pub fn is_config(name: &str) -> bool {
    const SUFFIXES: [&str; 6] = [".tf", ".tf.json", ".tofu", ".tofu.json", ".tfvars", ".tfvars.json"];
    SUFFIXES.iter().any(|s| name.ends_with(s))
        || [DEPENDENCY_LOCK, ".terraform-version", ".opentofu-version", TERRAGRUNT].contains(&name)
}

/// True for `crash.log` and `crash.<n>.log`.
pub fn is_crash_log(name: &str) -> bool {
    name == "crash.log" || (name.starts_with("crash.") && name.ends_with(".log"))
}

/// Terraform workspace names are short and printable; anything else is not a workspace (nor a
/// folder of `.iacwatch/` or of `terraform.tfstate.d/`).
pub fn valid_workspace_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 90 && !name.starts_with('.') && name.chars().all(|c| !c.is_control() && c != '/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_names_are_short_printable_folder_names() {
        assert!(valid_workspace_name("prod-eu"));
        assert!(valid_workspace_name(&"a".repeat(90)));
        assert!(!valid_workspace_name(&"a".repeat(91)));
        for bad in ["", ".hidden", "a/b", "tab\there"] {
            assert!(!valid_workspace_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn markers_make_a_workspace_directory() {
        assert!(is_marker(".iacwatch", true));
        assert!(!is_marker(".iacwatch", false));
        assert!(is_marker("terraform.tfstate", false));
        assert!(is_marker("prod.tfplan.json", false));
        assert!(!is_marker("main.tf", false));
        assert!(is_config("main.tf") && is_config("terragrunt.hcl") && !is_config("README.md"));
        assert!(is_crash_log("crash.12.log") && !is_crash_log("crash.txt"));
    }
}
