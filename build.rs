//! Records what `--version` and `iacwatch_build_info` report: the git revision the binary was built
//! from and the compiler that built it. Either is `unknown` where it cannot be found (a source
//! tarball, no git); the build never fails for it.

use std::process::Command;

fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

fn main() {
    let revision = std::env::var("IACWATCH_BUILD_REVISION")
        .ok()
        .or_else(|| output("git", &["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_owned());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let rustc_version = output(&rustc, &["--version"])
        .and_then(|v| v.split_whitespace().nth(1).map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned());
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".to_owned());
    println!("cargo:rustc-env=IACWATCH_REVISION={revision}");
    println!("cargo:rustc-env=IACWATCH_RUSTC_VERSION={rustc_version}");
    println!("cargo:rustc-env=IACWATCH_TARGET={target}");
    println!("cargo:rerun-if-env-changed=IACWATCH_BUILD_REVISION");
    // A new commit changes HEAD (or the branch it points at); either file may be absent.
    for path in [".git/HEAD", ".git/refs/heads", ".git/packed-refs"] {
        if std::path::Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}
