"""States real Terraform wrote, for bench/run's comparison with a `terraform show -json` loop."""

import os
import shutil
import subprocess


def terraform_bin(repo):
    return os.path.join(repo, ".tools", "terraform", "bin", "terraform")


TF_CONFIG = """
resource "null_resource" "r" {
  count = 40
  triggers = {
    name      = "bench-${count.index}"
    policy    = jsonencode({ Version = "2012-10-17", Statement = [for i in range(4) : { Effect = "Allow", Action = ["s3:GetObject", "s3:PutObject"], Resource = "arn:aws:s3:::bucket-${count.index}/${i}/*" }] })
    user_data = join("\\n", [for i in range(30) : "echo line ${i} of the instance bootstrap script ${count.index}"])
  }
}
"""


def terraform_corpus(workspaces, repo, work, log):
    """`workspaces` directories holding a state that real Terraform wrote (40 null_resource
    instances with policy and user-data triggers, about 100 KB), and the initialised directory
    `terraform show` runs in (it needs the provider's schema). Built once; None without Terraform."""
    terraform = terraform_bin(repo)
    if not os.path.exists(terraform):
        return None
    base = os.path.join(work, f"terraform-{workspaces}")
    init, root = os.path.join(base, "init"), os.path.join(base, "workspaces")
    rc = os.path.join(work, "terraformrc")
    with open(rc, "w") as f:
        f.write(f'disable_checkpoint = true\nprovider_installation {{\n  filesystem_mirror {{\n'
                f'    path = "{os.path.join(repo, ".tools", "terraform", "mirror")}"\n  }}\n}}\n')
    env = {"TF_CLI_CONFIG_FILE": rc, "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1"}
    state = os.path.join(init, "terraform.tfstate")
    if not os.path.exists(base + ".done"):
        log(f"terraform apply for {workspaces} workspaces")
        shutil.rmtree(base, ignore_errors=True)
        os.makedirs(init)
        with open(os.path.join(init, "main.tf"), "w") as f:
            f.write(TF_CONFIG)
        for args in (["init", "-input=false", "-no-color"], ["apply", "-auto-approve", "-input=false", "-no-color"]):
            subprocess.run([terraform] + args, cwd=init, env=dict(os.environ, **env), check=True,
                           stdout=subprocess.DEVNULL)
        for i in range(workspaces):
            ws = os.path.join(root, f"ws-{i:03d}")
            os.makedirs(ws)
            shutil.copy(state, os.path.join(ws, "terraform.tfstate"))
        open(base + ".done", "w").close()
    states = sorted(os.path.join(root, d, "terraform.tfstate") for d in os.listdir(root))
    with open(os.path.join(base, "states.list"), "w") as f:
        f.write("\n".join(states) + "\n")
    return {"terraform": terraform, "init": init, "root": root, "list": os.path.join(base, "states.list"), "env": env,
            "workspaces": workspaces, "state_bytes": sum(os.path.getsize(p) for p in states)}


def terraform_show_loop(t):
    """`terraform show -json` of each state, one Terraform per workspace, as a user who only
    trusts Terraform's own reading of its files would script it."""
    return (f"cd {t['init']} && while IFS= read -r f; do {t['terraform']} show -json \"$f\"; done < {t['list']} "
            "> /dev/null", t["env"], None)
