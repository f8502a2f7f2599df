//! A real Terraform (`tools/install-terraform`: Terraform 1.0.3 and the null provider, offline)
//! driving a root module in a temporary directory.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;
use tempfile::TempDir;

use crate::support::{iacwatch, tool};

/// A Terraform root module in a temporary directory, initialised.
pub struct Workspace {
    pub dir: TempDir,
    terraform: PathBuf,
    /// Where the wrapped commands' output goes (outside the workspace).
    logs: TempDir,
}

impl Workspace {
    /// `None` when Terraform is not installed (outside CI).
    pub fn new(main_tf: &str) -> Option<Workspace> {
        Workspace::new_in(&std::env::temp_dir(), main_tf)
    }

    /// The same, in a new directory under `parent` (a root a daemon watches).
    pub fn new_in(parent: &Path, main_tf: &str) -> Option<Workspace> {
        let terraform = tool("terraform/bin/terraform")?;
        let ws = Workspace {
            dir: tempfile::Builder::new().prefix("ws-").tempdir_in(parent).unwrap(),
            terraform,
            logs: tempfile::tempdir().unwrap(),
        };
        fs::write(ws.path().join("main.tf"), main_tf).unwrap();
        let init = ws.terraform(&["init", "-input=false", "-no-color"]).output().unwrap();
        assert!(init.status.success(), "terraform init: {}", text(&init.stderr));
        Some(ws)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn env(&self, command: &mut Command) {
        let bin = self.terraform.parent().unwrap();
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![bin.to_owned()];
        dirs.extend(std::env::split_paths(&path));
        command
            .env("PATH", std::env::join_paths(dirs).unwrap())
            .env("TF_CLI_CONFIG_FILE", bin.parent().unwrap().join("terraformrc"))
            .env("CHECKPOINT_DISABLE", "1")
            .env("TF_IN_AUTOMATION", "1")
            .env_remove("TF_WORKSPACE")
            .current_dir(self.path())
            .stdin(Stdio::null());
    }

    pub fn terraform(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.terraform);
        command.args(args);
        self.env(&mut command);
        command
    }

    /// `iacwatch run --operation OP --dir WS [extra] -- terraform ARGS...`, output into a log file.
    pub fn wrapper(&self, operation: &str, extra: &[&str], terraform: &[&str]) -> Command {
        let mut command = iacwatch();
        command
            .args(["run", "--operation", operation, "--dir"])
            .arg(self.path())
            .args(["--run-id", "test-1"])
            .args(extra)
            .args(["--", "terraform"])
            .args(terraform);
        self.env(&mut command);
        command
    }

    /// Starts a wrapper whose output goes to `name` in the log folder.
    pub fn spawn(&self, mut command: Command, name: &str) -> Child {
        let log = fs::File::create(self.logs.path().join(name)).unwrap();
        command.stdout(log.try_clone().unwrap()).stderr(log).spawn().unwrap()
    }

    pub fn log(&self, name: &str) -> String {
        fs::read_to_string(self.logs.path().join(name)).unwrap_or_default()
    }

    pub fn marker(&self, name: &str) -> PathBuf {
        self.path().join(".iacwatch/default").join(name)
    }

    pub fn last_run(&self) -> Value {
        serde_json::from_slice(&fs::read(self.marker("last-run.json")).unwrap()).unwrap()
    }

    /// The workspace as `iacwatch scan --format json` reports it.
    pub fn scan(&self) -> Value {
        scan(self.path())
    }
}

/// The one workspace of `dir`, as `iacwatch scan --format json` reports it.
pub fn scan(dir: &Path) -> Value {
    let output = iacwatch().args(["scan", "--format", "json"]).arg(dir).output().unwrap();
    assert!(output.status.success(), "scan: {}", text(&output.stderr));
    let doc: Value = serde_json::from_slice(&output.stdout).unwrap();
    let workspaces = doc["workspaces"].as_array().unwrap();
    assert_eq!(workspaces.len(), 1, "{doc:#}");
    workspaces[0].clone()
}

/// The reason codes of a workspace object.
pub fn reasons(ws: &Value) -> Vec<String> {
    ws["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap().to_owned())
        .collect()
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
