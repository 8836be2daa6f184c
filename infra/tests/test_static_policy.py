"""infra/static-policy: the bucket policy of the static route, evaluated against sample keys.

Standard library only. A tiny evaluator of S3 bucket policies (principals, actions,
resource ARNs with `*` and `?` wildcards, a few condition operators, explicit deny
over allow) stands in for IAM, so the tests ask the question that matters: which
keys can the static host read?

    python3 -m unittest discover -s infra/tests
"""

import contextlib
import importlib.machinery
import importlib.util
import io
import json
import os
import re
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "..", "static-policy")


def load_script():
    loader = importlib.machinery.SourceFileLoader("static_policy", SCRIPT)
    spec = importlib.util.spec_from_loader("static_policy", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


sp = load_script()

BUCKET = "berth-registry"
DISTRIBUTION = "arn:aws:cloudfront::123456789012:distribution/E2ABCDEFGHIJKL"
OTHER_DISTRIBUTION = "arn:aws:cloudfront::123456789012:distribution/EOTHERDISTRIB"
DIGEST = "sha256:" + "ab" * 32

CLOUDFRONT = {"Service": "cloudfront.amazonaws.com"}
ANONYMOUS = "anonymous"
ROLE = {"AWS": "arn:aws:iam::123456789012:role/berth-registry"}


# ---------------------------------------------------------------- the evaluator

def wildcard(pattern, value, ignore_case=False):
    """IAM-style glob: `*` is any run of characters (including `/`), `?` one."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.S | (re.I if ignore_case else 0)) is not None


def as_list(value):
    return value if isinstance(value, list) else [value]


def principal_matches(statement_principal, principal):
    if statement_principal == "*":
        return True
    if principal == ANONYMOUS:
        # Only "*" (or {"AWS": "*"}) covers anonymous requests.
        return "*" in as_list(statement_principal.get("AWS", []))
    for kind, values in statement_principal.items():
        for value in as_list(values):
            if kind in principal and (value == "*" and kind == "AWS" or value == principal[kind]):
                return True
    return False


def condition_holds(condition, context):
    # Condition keys are case-insensitive; values are compared as strings.
    ctx = {k.lower(): v for k, v in context.items()}
    for operator, tests in condition.items():
        for key, expected in tests.items():
            actual = ctx.get(key.lower())
            expected = [str(e).lower() if operator == "Bool" else e for e in as_list(expected)]
            if operator == "StringEquals":
                ok = actual is not None and actual in expected
            elif operator == "StringNotEquals":
                ok = actual is None or actual not in expected
            elif operator == "StringLike":
                ok = actual is not None and any(wildcard(e, actual) for e in expected)
            elif operator == "Bool":
                ok = actual is not None and str(actual).lower() in expected
            else:
                raise AssertionError(f"the evaluator does not know {operator}")
            if not ok:
                return False
    return True


def statement_applies(statement, principal, action, resource, context):
    return (
        principal_matches(statement["Principal"], principal)
        and any(wildcard(a, action, ignore_case=True) for a in as_list(statement["Action"]))
        and any(wildcard(r, resource) for r in as_list(statement["Resource"]))
        and condition_holds(statement.get("Condition", {}), context)
    )


def evaluate(policy, principal, action, resource, context):
    """'Deny' (explicit), 'Allow', or 'NoMatch' (implicit deny for anyone the bucket
    policy alone must grant)."""
    matching = [s for s in policy["Statement"]
                if statement_applies(s, principal, action, resource, context)]
    if any(s["Effect"] == "Deny" for s in matching):
        return "Deny"
    if any(s["Effect"] == "Allow" for s in matching):
        return "Allow"
    return "NoMatch"


def object_arn(key, bucket=BUCKET):
    return f"arn:aws:s3:::{bucket}/{key}"


class EvaluatorTest(unittest.TestCase):
    def test_wildcards(self):
        self.assertTrue(wildcard("arn:aws:s3:::b/v2/*", "arn:aws:s3:::b/v2/a/b/c"))
        self.assertTrue(wildcard("arn:aws:s3:::b/v?/x", "arn:aws:s3:::b/v2/x"))
        self.assertFalse(wildcard("arn:aws:s3:::b/v?/x", "arn:aws:s3:::b/v22/x"))
        self.assertFalse(wildcard("arn:aws:s3:::b/v2/a/*", "arn:aws:s3:::b/v2/a"))
        self.assertFalse(wildcard("arn:aws:s3:::b/v2/a.b", "arn:aws:s3:::b/v2/aXb"))
        self.assertTrue(wildcard("s3:Get*", "s3:getobject", ignore_case=True))

    def test_explicit_deny_wins(self):
        policy = {"Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::b/*"},
            {"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject",
             "Resource": "arn:aws:s3:::b/secret"},
        ]}
        self.assertEqual(evaluate(policy, ANONYMOUS, "s3:GetObject", "arn:aws:s3:::b/x", {}), "Allow")
        self.assertEqual(evaluate(policy, ANONYMOUS, "s3:GetObject", "arn:aws:s3:::b/secret", {}), "Deny")

    def test_conditions(self):
        self.assertTrue(condition_holds({"StringEquals": {"AWS:SourceArn": "x"}}, {"aws:sourcearn": "x"}))
        self.assertFalse(condition_holds({"StringEquals": {"AWS:SourceArn": "x"}}, {}))
        self.assertTrue(condition_holds({"StringNotEquals": {"aws:PrincipalArn": "x"}}, {}))
        self.assertTrue(condition_holds({"Bool": {"aws:SecureTransport": "false"}},
                                        {"aws:SecureTransport": False}))


# ---------------------------------------------------------------- the policy

PUBLIC = ["acme/web", "library/alpine"]


def public_keys(repo):
    return [
        f"v2/{repo}/manifests/latest",
        f"v2/{repo}/manifests/v1.2.3",
        f"v2/{repo}/manifests/{DIGEST}",
        f"v2/{repo}/blobs/{DIGEST}",
        f"v2/{repo}/tags/list",
        f"r/{repo}/index.html",
    ]


# The catalog site's keys shared by every repository (docs/site.md): both list public
# repositories only.
SITE_KEYS = ["index.html", "site/index.json"]


PRIVATE_KEYS = [
    # a private repository whose name has a public one as a prefix
    *public_keys("acme/web-private"),
    *public_keys("acme/webapp"),
    # a private repository nested under a public one
    *public_keys("acme/web/secret"),
    # the public repository's parent namespace
    *public_keys("acme"),
    *public_keys("library/alpine-edge"),
    *public_keys("other/thing"),
    "v2/acme/web",
    "v2/acme/web/",
    "v2/acme/web/tags/list.bak",
    "v2/acme/web/tags/other",
    "v2/acme/web/referrers/" + DIGEST,
    # the catalog lists every repository, private ones too
    "v2/_catalog",
    # bookkeeping and access documents
    "_berth/layout.json",
    "_berth/repositories/acme/web",
    "_berth/repositories/acme/web-private",
    f"_berth/blob-holders/{DIGEST}/acme/web",
    f"_berth/referrers/acme/web/{DIGEST}/{DIGEST}",
    "_berth/access/users/alice",
    "_berth/access/tokens/alice/laptop",
    "_berth/access/public/acme/web",
    # the site's sources: rendered into the pages, never served themselves
    "_berth/descriptions/acme/web",
    "_berth/descriptions/acme/secret",
    "_berth/site.json",
    # site pages of private repositories (one nested under a public one's namespace,
    # one under the public one itself), and anything under a public page's folder
    # other than the page
    "r/acme/secret/index.html",
    "r/acme/web/secret/index.html",
    "r/acme/index.html",
    "r/acme/web/extra",
    "r/acme/web/index.html.bak",
    "r/acme/web/index.htm",
    "r/acme/web",
    "r/index.html",
    "r//index.html",
    "r/",
    "site/other.json",
    "site/index.json.bak",
    # outside the store's key space
    "index.htm",
    "v2",
    "",
]


class CloudFrontPolicyTest(unittest.TestCase):
    def setUp(self):
        self.policy = sp.policy(BUCKET, PUBLIC, distribution_arn=DISTRIBUTION)
        self.context = {"AWS:SourceArn": DISTRIBUTION, "aws:SecureTransport": True}

    def read(self, key, principal=CLOUDFRONT, context=None, action="s3:GetObject"):
        return evaluate(self.policy, principal, action, object_arn(key),
                        self.context if context is None else context)

    def test_public_repositories_are_readable(self):
        for repo in PUBLIC:
            for key in public_keys(repo):
                with self.subTest(key=key):
                    self.assertEqual(self.read(key), "Allow")

    def test_the_api_root_is_readable(self):
        self.assertEqual(self.read("v2/index.html"), "Allow")

    def test_the_site_is_readable(self):
        for key in SITE_KEYS + ["r/acme/web/index.html", "r/library/alpine/index.html"]:
            with self.subTest(key=key):
                self.assertEqual(self.read(key), "Allow")

    def test_private_repositories_bookkeeping_and_catalog_are_not(self):
        for key in PRIVATE_KEYS:
            with self.subTest(key=key):
                self.assertNotEqual(self.read(key), "Allow")

    def test_bookkeeping_and_catalog_are_explicitly_denied(self):
        for key in ["_berth/layout.json", "_berth/access/users/alice", "v2/_catalog",
                    "_berth/descriptions/acme/web", "_berth/site.json"]:
            with self.subTest(key=key):
                self.assertEqual(self.read(key), "Deny")

    def test_explicit_deny_survives_a_widened_allow(self):
        widened = json.loads(json.dumps(self.policy))
        widened["Statement"].append({
            "Effect": "Allow", "Principal": CLOUDFRONT, "Action": "s3:GetObject",
            "Resource": object_arn("*"),
        })
        for key in ["_berth/access/users/alice", "_berth/layout.json", "v2/_catalog"]:
            with self.subTest(key=key):
                self.assertEqual(
                    evaluate(widened, CLOUDFRONT, "s3:GetObject", object_arn(key), self.context),
                    "Deny")

    def test_only_this_distribution_reads(self):
        other = {"AWS:SourceArn": OTHER_DISTRIBUTION}
        self.assertNotEqual(self.read("v2/acme/web/manifests/latest", context=other), "Allow")
        self.assertNotEqual(self.read("v2/acme/web/manifests/latest", context={}), "Allow")

    def test_nobody_else_reads(self):
        for principal in (ANONYMOUS, ROLE):
            with self.subTest(principal=principal):
                self.assertNotEqual(self.read("v2/acme/web/manifests/latest", principal), "Allow")

    def test_only_reads(self):
        for action in ("s3:PutObject", "s3:DeleteObject", "s3:ListBucket", "s3:GetObjectAcl"):
            with self.subTest(action=action):
                self.assertNotEqual(
                    self.read("v2/acme/web/manifests/latest", action=action), "Allow")

    def test_other_buckets_are_untouched(self):
        self.assertNotEqual(
            evaluate(self.policy, CLOUDFRONT, "s3:GetObject",
                     object_arn("v2/acme/web/manifests/latest", bucket="other-bucket"),
                     self.context),
            "Allow")

    def test_resources_are_exact_prefixes(self):
        resources = self.policy["Statement"][0]["Resource"]
        for resource in resources:
            key = resource.split(f"{BUCKET}/", 1)[1]
            # A wildcard only ever follows a reserved path component and a '/'; site
            # keys are exact.
            self.assertRegex(
                key,
                r"^(v2/index\.html|index\.html|site/index\.json"
                r"|v2/[a-z0-9._/-]+/(manifests/\*|blobs/\*|tags/list)"
                r"|r/[a-z0-9._/-]+/index\.html)$")
            if not key.startswith("v2/"):
                self.assertNotIn("*", key)
                self.assertNotIn("?", key)
        keys = [r.split(f"{BUCKET}/", 1)[1] for r in resources]
        self.assertEqual(sorted(k for k in keys if k.startswith("r/")),
                         [f"r/{repo}/index.html" for repo in sorted(PUBLIC)])


class AnonymousPolicyTest(unittest.TestCase):
    """--anonymous: an S3 website endpoint (no CloudFront identity to grant to)."""

    def setUp(self):
        self.policy = sp.policy(BUCKET, PUBLIC, anonymous=True)

    def read(self, key, principal=ANONYMOUS, context=None):
        if context is None:
            context = {"aws:PrincipalType": "Anonymous"} if principal == ANONYMOUS else \
                {"aws:PrincipalType": "AssumedRole"}
        return evaluate(self.policy, principal, "s3:GetObject", object_arn(key), context)

    def test_public_keys_allowed_private_denied(self):
        for key in public_keys("acme/web") + ["v2/index.html"] + SITE_KEYS:
            with self.subTest(key=key):
                self.assertEqual(self.read(key), "Allow")
        for key in PRIVATE_KEYS:
            with self.subTest(key=key):
                self.assertNotEqual(self.read(key), "Allow")
        self.assertEqual(self.read("_berth/access/users/alice"), "Deny")

    def test_the_deny_does_not_lock_out_the_registry_or_publisher(self):
        # The registry function reads _berth/ with its role; the bucket policy's Deny
        # must not apply to it (its own IAM policy grants the read).
        self.assertNotEqual(self.read("_berth/access/users/alice", principal=ROLE), "Deny")
        self.assertNotEqual(self.read("v2/_catalog", principal=ROLE), "Deny")


class PrefixAndValidationTest(unittest.TestCase):
    def test_store_prefix(self):
        policy = sp.policy(BUCKET, ["acme/web"], distribution_arn=DISTRIBUTION, prefix="reg/")
        ctx = {"AWS:SourceArn": DISTRIBUTION}
        self.assertEqual(evaluate(policy, CLOUDFRONT, "s3:GetObject",
                                  object_arn("reg/v2/acme/web/blobs/" + DIGEST), ctx), "Allow")
        self.assertNotEqual(evaluate(policy, CLOUDFRONT, "s3:GetObject",
                                     object_arn("v2/acme/web/blobs/" + DIGEST), ctx), "Allow")
        self.assertEqual(evaluate(policy, CLOUDFRONT, "s3:GetObject",
                                  object_arn("reg/_berth/layout.json"), ctx), "Deny")
        for key in ("reg/index.html", "reg/site/index.json", "reg/r/acme/web/index.html"):
            with self.subTest(key=key):
                self.assertEqual(evaluate(policy, CLOUDFRONT, "s3:GetObject",
                                          object_arn(key), ctx), "Allow")
        self.assertNotEqual(evaluate(policy, CLOUDFRONT, "s3:GetObject",
                                     object_arn("index.html"), ctx), "Allow")

    def test_invalid_repositories_are_refused(self):
        for name in ["", "Acme/web", "acme//web", "/acme", "acme/", "acme/manifests",
                     "blobs", "acme/tags/x", "acme/referrers", "a*", "a?b", "../x",
                     "acme/web/../../_berth", "a" * 256, "acme web", "-acme"]:
            with self.subTest(name=name):
                with self.assertRaises(sp.PolicyError):
                    sp.statements(BUCKET, [name], distribution_arn=DISTRIBUTION)

    def test_valid_names(self):
        for name in ["a", "acme/web", "a.b_c__d--e/f0", "x/y/z", "library/alpine"]:
            with self.subTest(name=name):
                sp.statements(BUCKET, [name], distribution_arn=DISTRIBUTION)

    def test_reader_is_exactly_one(self):
        with self.assertRaises(sp.PolicyError):
            sp.statements(BUCKET, ["a"])
        with self.assertRaises(sp.PolicyError):
            sp.statements(BUCKET, ["a"], distribution_arn=DISTRIBUTION, anonymous=True)
        with self.assertRaises(sp.PolicyError):
            sp.statements(BUCKET, ["a"], distribution_arn="arn:aws:s3:::nope")

    def test_bad_bucket_or_prefix(self):
        for bucket in ["", "B", "a", "bucket/x", "bucket*"]:
            with self.subTest(bucket=bucket), self.assertRaises(sp.PolicyError):
                sp.statements(bucket, ["a"], anonymous=True)
        for prefix in ["a/../b", "a*", "a/./b"]:
            with self.subTest(prefix=prefix), self.assertRaises(sp.PolicyError):
                sp.statements(BUCKET, ["a"], anonymous=True, prefix=prefix)

    def test_duplicates_and_order_do_not_matter(self):
        a = sp.statements(BUCKET, ["b/x", "a/y", "b/x"], distribution_arn=DISTRIBUTION)
        b = sp.statements(BUCKET, ["a/y", "b/x"], distribution_arn=DISTRIBUTION)
        self.assertEqual(a, b)


class CommandLineTest(unittest.TestCase):
    def run_main(self, *argv):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = sp.main(list(argv))
            except SystemExit as e:  # argparse errors
                code = e.code
        return code, out.getvalue(), err.getvalue()

    def test_prints_a_policy(self):
        code, out, _ = self.run_main("--bucket", BUCKET, "--distribution-arn", DISTRIBUTION,
                                     "acme/web,library/alpine", "other/x")
        self.assertEqual(code, 0)
        policy = json.loads(out)
        self.assertEqual(policy["Version"], "2012-10-17")
        self.assertEqual(policy["Statement"],
                         sp.statements(BUCKET, PUBLIC + ["other/x"], distribution_arn=DISTRIBUTION))

    def test_statements_only(self):
        code, out, _ = self.run_main("--bucket", BUCKET, "--anonymous", "--statements-only", "a/b")
        self.assertEqual(code, 0)
        self.assertIsInstance(json.loads(out), list)

    def test_errors_exit_non_zero_with_one_line(self):
        code, out, err = self.run_main("--bucket", BUCKET, "--anonymous", "acme/manifests")
        self.assertEqual(code, 2)
        self.assertEqual(out, "")
        self.assertTrue(err.startswith("error: "), err)
        code, _, _ = self.run_main("--bucket", BUCKET, "--anonymous")
        self.assertEqual(code, 2)
        code, _, _ = self.run_main("--bucket", BUCKET, "a/b")  # no reader
        self.assertNotEqual(code, 0)


if __name__ == "__main__":
    unittest.main()
