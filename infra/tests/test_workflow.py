"""infra/github/publish.yml: the example workflow's structure.

Checks the parts docs/deploy.md relies on: it can request an OIDC token
(permissions id-token: write), builds the image with docker, assumes the publisher
role with aws-actions/configure-aws-credentials (role-to-assume, no stored keys),
installs berth and runs `berth push docker-daemon:... --store s3://...`, in that
order, without interpolating expressions into shell scripts. Needs PyYAML.
"""

import os
import re
import unittest

import yaml

WORKFLOW = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "github", "publish.yml")


def load():
    with open(WORKFLOW) as f:
        return yaml.safe_load(f)


class WorkflowTest(unittest.TestCase):
    def setUp(self):
        self.wf = load()
        self.job = self.wf["jobs"]["publish"]
        self.steps = self.job["steps"]

    def index(self, predicate, what):
        for i, step in enumerate(self.steps):
            if predicate(step):
                return i
        self.fail(f"no step {what}")

    def test_triggers(self):
        # YAML 1.1 reads the bare key `on` as true.
        on = self.wf.get("on", self.wf.get(True))
        self.assertIn("push", on)
        self.assertIn("workflow_dispatch", on)

    def test_permissions(self):
        permissions = self.job.get("permissions", self.wf.get("permissions"))
        self.assertEqual(permissions.get("id-token"), "write")
        self.assertEqual(permissions.get("contents"), "read")
        self.assertFalse({k for k, v in permissions.items() if v == "write"} - {"id-token"})

    def test_job(self):
        self.assertTrue(self.job["runs-on"].startswith("ubuntu"))
        self.assertIn("timeout-minutes", self.job)
        for step in self.steps:
            self.assertIn("name", step)
            self.assertTrue(("uses" in step) != ("run" in step), step)

    def test_steps_in_order(self):
        checkout = self.index(lambda s: s.get("uses", "").startswith("actions/checkout@"),
                              "checking out")
        build = self.index(lambda s: "docker build" in s.get("run", ""), "running docker build")
        creds = self.index(
            lambda s: s.get("uses", "").startswith("aws-actions/configure-aws-credentials@"),
            "using aws-actions/configure-aws-credentials")
        install = self.index(
            lambda s: re.search(r"cargo\b.*\binstall\b.*berth-publisher", s.get("run", ""), re.S)
            or "releases/download" in s.get("run", ""),
            "installing berth")
        push = self.index(lambda s: re.search(r"\bberth push\b", s.get("run", "")), "running berth push")
        self.assertLess(checkout, build)
        self.assertLess(build, push)
        self.assertLess(creds, push)
        self.assertLess(install, push)

    def test_oidc_role_no_stored_keys(self):
        (step,) = [s for s in self.steps
                   if s.get("uses", "").startswith("aws-actions/configure-aws-credentials@")]
        self.assertIn("role-to-assume", step["with"])
        self.assertIn("aws-region", step["with"])
        with open(WORKFLOW) as f:
            text = f.read()
        self.assertNotIn("aws-access-key-id", text)
        self.assertNotIn("AWS_SECRET_ACCESS_KEY", text)

    def test_push_command(self):
        (step,) = [s for s in self.steps if re.search(r"\bberth push\b", s.get("run", ""))]
        run = step["run"].replace("\\\n", " ")
        self.assertRegex(run, r"berth push \"?docker-daemon:")
        self.assertIn("--store", run)
        store = step.get("env", {}).get("BERTH_STORE", "")
        self.assertTrue("$BERTH_STORE" in run and store, "the store comes from a variable")

    def test_no_expressions_in_scripts(self):
        # ${{ }} inside `run:` is pasted into the script before the shell sees it
        # (script injection); values go through env instead.
        for step in self.steps:
            with self.subTest(step=step["name"]):
                self.assertNotIn("${{", step.get("run", ""))


if __name__ == "__main__":
    unittest.main()
