"""infra/template.yaml, resolved for sample parameters and checked for what matters.

cfn-lint and checkov check the template's shape and common misconfigurations; these
tests check berth's own claims: the static route's bucket policy is exactly what
infra/static-policy prints (the 20-slot construction and the catalog site's keys
included), the function only
reads, the publisher policy covers every S3 call the publisher makes and nothing
more, the token key is readable by the function's role only, and the CloudFront
function at the edge agrees with the bucket policy (when node is installed).

Needs PyYAML (infra/check runs this with its venv's python, which has it).
"""

import json
import os
import re
import shutil
import subprocess
import unittest

import yaml

import test_static_policy as tsp

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
TEMPLATE = os.path.join(ROOT, "infra", "template.yaml")
S3_STORE = os.path.join(ROOT, "crates", "core", "src", "store", "s3.rs")

ACCOUNT = "123456789012"
BUCKET = "berth-bucket"
DISTRIBUTION_ID = "EDISTRIBUTIONID"
DISTRIBUTION_ARN = f"arn:aws:cloudfront::{ACCOUNT}:distribution/{DISTRIBUTION_ID}"
NOVALUE = object()


# ---------------------------------------------------------------- loading

class CfnLoader(yaml.SafeLoader):
    pass


def _construct(tag):
    key = tag if tag in ("Ref", "Condition") else "Fn::" + tag

    def construct(loader, node):
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
            if tag == "GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {key: value}

    return construct


for _tag in ["Ref", "Condition", "Sub", "Join", "Split", "Select", "If", "Not", "Equals",
             "And", "Or", "GetAtt", "Base64", "FindInMap", "GetAZs", "ImportValue",
             "EachMemberEquals", "Contains", "EachMemberIn", "ValueOf", "RefAll", "Cidr",
             "Length", "ToJsonString"]:
    CfnLoader.add_constructor("!" + _tag, _construct(_tag))


def load_template():
    with open(TEMPLATE) as f:
        return yaml.load(f, Loader=CfnLoader)


# ---------------------------------------------------------------- resolving

TOKEN_KEY = f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:berth/token-key-AbCdEf"
REQUIRED = {"TokenKeySecretArn": TOKEN_KEY}

RESOURCE_REFS = {
    "Bucket": BUCKET,
    "StaticDistribution": DISTRIBUTION_ID,
    "PublisherPolicy": f"arn:aws:iam::{ACCOUNT}:policy/berth-PublisherPolicy",
    "GitHubOidcProvider": f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com",
    "RegistryLogs": "berth-RegistryLogs",
}
GETATTS = {
    ("Bucket", "Arn"): f"arn:aws:s3:::{BUCKET}",
    ("Bucket", "RegionalDomainName"): f"{BUCKET}.s3.eu-west-1.amazonaws.com",
    ("RegistryRole", "Arn"): f"arn:aws:iam::{ACCOUNT}:role/berth-RegistryRole",
    ("RegistryLogs", "Arn"): f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:berth-RegistryLogs:*",
    ("RegistryUrl", "FunctionUrl"): "https://abcdefgh.lambda-url.eu-west-1.on.aws/",
}
PSEUDO = {
    "AWS::Partition": "aws",
    "AWS::AccountId": ACCOUNT,
    "AWS::Region": "eu-west-1",
    "AWS::StackName": "berth",
}


class Resolver:
    def __init__(self, template, **params):
        self.template = template
        self.params = {}
        for name, spec in template["Parameters"].items():
            value = params.pop(name, spec.get("Default", REQUIRED.get(name)))
            if value is None:
                raise AssertionError(f"parameter {name} has no default")
            if spec["Type"] == "CommaDelimitedList":
                value = value if isinstance(value, list) else str(value).split(",")
            else:
                value = str(value)
            self.params[name] = value
        if params:
            raise AssertionError(f"unknown parameters {sorted(params)}")
        self._conditions = {}

    # conditions
    def condition(self, name):
        if name not in self._conditions:
            self._conditions[name] = bool(self.resolve(self.template["Conditions"][name]))
        return self._conditions[name]

    def ref(self, name):
        if name == "AWS::NoValue":
            return NOVALUE
        if name in self.params:
            return self.params[name]
        if name in PSEUDO:
            return PSEUDO[name]
        if name in self.template["Resources"]:
            return RESOURCE_REFS.get(name, f"<Ref {name}>")
        raise AssertionError(f"Ref to unknown {name}")

    def getatt(self, resource, attribute):
        if (resource, attribute) in GETATTS:
            return GETATTS[(resource, attribute)]
        return f"<{resource}.{attribute}>"

    def sub(self, value):
        if isinstance(value, list):
            text, variables = value
            variables = {k: self.resolve(v) for k, v in variables.items()}
        else:
            text, variables = value, {}

        def replace(m):
            name = m.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name:
                return str(self.getatt(*name.split(".", 1)))
            return str(self.ref(name))

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    def resolve(self, node):
        if isinstance(node, list):
            items = [self.resolve(n) for n in node]
            return [i for i in items if i is not NOVALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Condition" and isinstance(arg, str):
                return self.condition(arg)
            if key == "Fn::GetAtt":
                return self.getatt(*arg)
            if key == "Fn::Sub":
                return self.sub(arg)
            if key == "Fn::Join":
                return arg[0].join(str(v) for v in self.resolve(arg[1]))
            if key == "Fn::Split":
                return self.resolve(arg[1]).split(arg[0])
            if key == "Fn::Select":
                return self.resolve(arg[1])[int(self.resolve(arg[0]))]
            if key == "Fn::If":
                return self.resolve(arg[1] if self.condition(arg[0]) else arg[2])
            if key == "Fn::Equals":
                a, b = self.resolve(arg)
                return a == b
            if key == "Fn::Not":
                return not self.resolve(arg[0])
            if key == "Fn::And":
                return all(self.resolve(a) for a in arg)
            if key == "Fn::Or":
                return any(self.resolve(a) for a in arg)
        out = {}
        for k, v in node.items():
            v = self.resolve(v)
            if v is not NOVALUE:
                out[k] = v
        return out

    def resources(self):
        """The resources this parameter set creates, resolved."""
        out = {}
        for name, resource in self.template["Resources"].items():
            if "Condition" in resource and not self.condition(resource["Condition"]):
                continue
            out[name] = self.resolve(resource)
        return out


def statements_of(policy_document):
    return tsp.as_list(policy_document["Statement"])


def by_sid(statements):
    return {s.get("Sid"): s for s in statements}


def names(n):
    return [f"org{i}/app-{i}" for i in range(n)]


class StaticRouteTest(unittest.TestCase):
    def setUp(self):
        self.template = load_template()

    def bucket_policy(self, **params):
        resources = Resolver(self.template, **params).resources()
        return by_sid(statements_of(resources["BucketPolicy"]["Properties"]["PolicyDocument"]))

    def test_static_off_grants_nothing(self):
        statements = self.bucket_policy()
        self.assertEqual(set(statements), {"DenyInsecureTransport"})
        resources = Resolver(self.template).resources()
        for name in ("StaticDistribution", "StaticOriginAccessControl", "StaticRequestFilter"):
            self.assertNotIn(name, resources)

    def test_template_policy_is_what_the_script_prints(self):
        for repos in (["acme/web"], ["acme/web", "library/alpine", "x/y/z"], names(20)):
            with self.subTest(count=len(repos)):
                got = self.bucket_policy(StaticSite="true", PublicRepositories=",".join(repos))
                want = by_sid(tsp.sp.statements(BUCKET, repos, distribution_arn=DISTRIBUTION_ARN))
                self.assertEqual(set(got) - {"DenyInsecureTransport"}, set(want))
                for sid, statement in want.items():
                    mine = dict(got[sid])
                    self.assertEqual(sorted(tsp.as_list(mine.pop("Resource"))),
                                     sorted(statement.pop("Resource")))
                    self.assertEqual(mine, statement)

    def test_every_slot_is_used(self):
        # 20 distinct repositories give 20 * 4 keys plus v2/index.html, index.html and
        # site/index.json, no duplicates.
        got = self.bucket_policy(StaticSite="true", PublicRepositories=",".join(names(20)))
        resources = got["StaticSiteReadsPublicRepositories"]["Resource"]
        self.assertEqual(len(resources), 83)
        self.assertEqual(len(set(resources)), 83)
        pages = sorted(r for r in resources if r.startswith(f"arn:aws:s3:::{BUCKET}/r/"))
        self.assertEqual(pages, sorted(f"arn:aws:s3:::{BUCKET}/r/{n}/index.html" for n in names(20)))

    def test_bucket_policy_grants_the_site_for_public_repositories_only(self):
        policy = {"Statement": list(self.bucket_policy(
            StaticSite="true", PublicRepositories="acme/web,library/alpine").values())}
        ctx = {"AWS:SourceArn": DISTRIBUTION_ARN, "aws:SecureTransport": True}

        def read(key):
            return tsp.evaluate(policy, tsp.CLOUDFRONT, "s3:GetObject",
                                f"arn:aws:s3:::{BUCKET}/{key}", ctx)

        for key in tsp.SITE_KEYS + ["r/acme/web/index.html", "r/library/alpine/index.html"]:
            with self.subTest(key=key):
                self.assertEqual(read(key), "Allow")
        for key in ["r/acme/secret/index.html", "r/acme/web/extra", "r/acme/index.html",
                    "r/acme/web/secret/index.html", "r/acme/web-private/index.html",
                    "r/acme/web/", "r/acme/web"]:
            with self.subTest(key=key):
                self.assertNotEqual(read(key), "Allow")
        for key in ["_berth/descriptions/acme/web", "_berth/site.json", "v2/_catalog"]:
            with self.subTest(key=key):
                self.assertEqual(read(key), "Deny")

    def test_more_than_20_repositories_fail_the_deployment(self):
        for count, fails in ((1, False), (20, False), (21, True), (30, True)):
            with self.subTest(count=count):
                resolver = Resolver(self.template, StaticSite="true",
                                    PublicRepositories=",".join(names(count)))
                self.assertEqual(resolver.condition("TooManyPublicRepositories"), fails)
                self.assertEqual(
                    "TooManyPublicRepositoriesAtMost20AreSupported" in resolver.resources(), fails)

    def test_static_resources_only_with_static_site(self):
        resolver = Resolver(self.template, StaticSite="false", PublicRepositories="acme/web")
        self.assertFalse(any(resolver.condition(f"PublicRepository{i}") for i in range(20)))
        self.assertFalse(resolver.condition("TooManyPublicRepositories"))

    def test_repository_pattern_agrees_with_berth(self):
        pattern = self.template["Parameters"]["PublicRepositories"]["AllowedPattern"]
        for name in ["acme/web", "a", "a.b_c__d--e/f0", "x/y/z", "library/alpine"]:
            with self.subTest(name=name):
                self.assertRegex(name, pattern)
        for name in ["Acme/web", "acme//web", "/acme", "acme/", "a*", "a?b", "../x",
                     "acme web", "-acme", "acme/web/../../_berth", "acme/manifests",
                     "blobs", "acme/tags/x", "acme/referrers/y"]:
            with self.subTest(name=name):
                self.assertIsNone(re.fullmatch(pattern, name))
                with self.assertRaises(tsp.sp.PolicyError):
                    tsp.sp.check_repository(name)

    def run_edge_filter(self, repos, uris):
        node = shutil.which("node")
        if not node:
            self.skipTest("node is not installed")
        resolver = Resolver(self.template, StaticSite="true", PublicRepositories=",".join(repos))
        code = resolver.resources()["StaticRequestFilter"]["Properties"]["FunctionCode"]
        harness = code + (
            "\nvar uris = " + json.dumps(uris) + ";\n"
            "console.log(JSON.stringify(uris.map(function (u) {\n"
            "  var r = handler({request: {method: 'GET', uri: u, headers: {}, querystring: {}}});\n"
            "  return r.statusCode ? r.statusCode : r.uri;\n"
            "})));\n")
        run = subprocess.run([node, "-e", harness], capture_output=True, text=True)
        self.assertEqual(run.returncode, 0, run.stderr)
        return dict(zip(uris, json.loads(run.stdout)))

    # What the edge rewrites (S3 REST origins have no index documents).
    REWRITES = {
        "/v2": "/v2/index.html",
        "/v2/": "/v2/index.html",
        "/": "/index.html",
        "/r/acme/web/": "/r/acme/web/index.html",
        "/r/library/alpine/": "/r/library/alpine/index.html",
    }

    def test_edge_filter_agrees_with_the_bucket_policy(self):
        repos = ["acme/web", "library/alpine"]
        uris = list(self.REWRITES) + [
            "/v2/index.html", "/v2/_catalog", "/_berth/layout.json",
            "/v2/acme/web/manifests/", "/v2/acme/web/blobs/",
            "/index.html", "/site/index.json", "/site/", "/site", "/r", "/r/", "/r//",
            "/r/acme/secret/", "/r/acme/web/../secret/", "/r/acme/web/../secret/index.html",
            "/r/acme/", "/r/acme/web/secret/", "/r/acme/web-private/", "/r/acme/webapp/",
            "/r/acme/web//", "/r/acme/web/index.html/", "/r/acme/web/index.htmlx",
            "/r/acme%2Fweb/", "/r/ACME/WEB/", "/r/acme/web/extra", "/_berth/site.json",
            "/_berth/descriptions/acme/web"]
        uris += ["/" + key for key in tsp.PRIVATE_KEYS if key]
        for repo in repos:
            uris += ["/" + key for key in tsp.public_keys(repo)]
        uris = list(dict.fromkeys(uris))
        results = self.run_edge_filter(repos, uris)
        policy = tsp.sp.policy(BUCKET, repos, distribution_arn=DISTRIBUTION_ARN)

        def readable(uri):
            return tsp.evaluate(
                policy, tsp.CLOUDFRONT, "s3:GetObject", f"arn:aws:s3:::{BUCKET}{uri}",
                {"AWS:SourceArn": DISTRIBUTION_ARN}) == "Allow"

        for uri, result in results.items():
            with self.subTest(uri=uri):
                if uri in self.REWRITES:
                    self.assertEqual(result, self.REWRITES[uri])
                    self.assertTrue(readable(result))
                    continue
                # The edge passes exactly what the bucket lets it read (v2/index.html
                # is reached through the /v2/ rewrite only).
                self.assertEqual(result == uri, readable(uri) and uri != "/v2/index.html", result)
                if result != uri:
                    self.assertEqual(result, 404)

    def test_edge_filter_serves_the_site(self):
        results = self.run_edge_filter(["acme/web", "library/alpine"], [
            "/", "/index.html", "/site/index.json", "/r/acme/web/", "/r/acme/web/index.html",
            "/r/acme/secret/", "/r/acme/secret/index.html", "/r/acme/web/../secret/",
            "/r/acme/web", "/r/acme/web/extra", "/r/acme/"])
        self.assertEqual(results, {
            "/": "/index.html",
            "/index.html": "/index.html",
            "/site/index.json": "/site/index.json",
            "/r/acme/web/": "/r/acme/web/index.html",
            "/r/acme/web/index.html": "/r/acme/web/index.html",
            "/r/acme/secret/": 404,
            "/r/acme/secret/index.html": 404,
            "/r/acme/web/../secret/": 404,
            "/r/acme/web": 404,
            "/r/acme/web/extra": 404,
            "/r/acme/": 404,
        })


# What each S3 operation the publisher calls needs (IAM actions).
S3_OPERATIONS = {
    "head_object": {"s3:GetObject"},
    "get_object": {"s3:GetObject"},
    "put_object": {"s3:PutObject"},
    "create_multipart_upload": {"s3:PutObject"},
    "upload_part": {"s3:PutObject"},
    "complete_multipart_upload": {"s3:PutObject"},
    "abort_multipart_upload": {"s3:AbortMultipartUpload"},
    "copy_object": {"s3:GetObject", "s3:PutObject"},
    "upload_part_copy": {"s3:GetObject", "s3:PutObject"},
    "list_objects_v2": {"s3:ListBucket"},
    "delete_object": {"s3:DeleteObject"},
}


def allowed_actions(statements):
    actions = set()
    for s in statements:
        if s["Effect"] == "Allow":
            actions |= set(tsp.as_list(s["Action"]))
    return actions


class PermissionsTest(unittest.TestCase):
    def setUp(self):
        self.template = load_template()
        self.resources = Resolver(self.template, GitHubRepo="acme/web").resources()

    def test_publisher_policy_covers_every_s3_call_and_no_more(self):
        with open(S3_STORE) as f:
            source = f.read()
        calls = set(re.findall(r"\b(?:client|presigner)\s*\.\s*([a-z_0-9]+)\s*\(\s*\)", source))
        self.assertTrue({"put_object", "list_objects_v2", "upload_part_copy"} <= calls, calls)
        unknown = calls - set(S3_OPERATIONS)
        self.assertFalse(unknown, f"new S3 calls in s3.rs: map them in S3_OPERATIONS and "
                                  f"grant them in PublisherPolicy: {sorted(unknown)}")
        needed = set().union(*(S3_OPERATIONS[c] for c in calls))
        statements = statements_of(self.resources["PublisherPolicy"]["Properties"]["PolicyDocument"])
        self.assertEqual(allowed_actions(statements), needed)
        for s in statements:
            for resource in tsp.as_list(s["Resource"]):
                self.assertIn(resource, (f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"))
            if s["Action"] == "s3:ListBucket":
                self.assertEqual(s["Resource"], f"arn:aws:s3:::{BUCKET}")

    def registry_statements(self, resources=None):
        role = (resources or self.resources)["RegistryRole"]["Properties"]
        self.assertEqual(len(role["Policies"]), 1)
        self.assertNotIn("ManagedPolicyArns", role)
        return statements_of(role["Policies"][0]["PolicyDocument"])

    def test_the_function_only_reads(self):
        statements = by_sid(self.registry_statements())
        self.assertEqual(statements["ReadObjects"]["Action"], "s3:GetObject")
        self.assertEqual(statements["ReadObjects"]["Resource"], f"arn:aws:s3:::{BUCKET}/*")
        self.assertEqual(statements["ListKeys"]["Action"], "s3:ListBucket")
        self.assertEqual(statements["ListKeys"]["Resource"], f"arn:aws:s3:::{BUCKET}")
        s3_actions = {a for a in allowed_actions(statements.values()) if a.startswith("s3:")}
        self.assertEqual(s3_actions, {"s3:GetObject", "s3:ListBucket"})
        for s in statements.values():
            self.assertNotIn("*", tsp.as_list(s["Resource"]))
            for action in tsp.as_list(s["Action"]):
                self.assertNotIn("*", action)

    def test_token_key_read_by_the_function_role_only(self):
        statements = by_sid(self.registry_statements())
        key = TOKEN_KEY
        self.assertEqual(statements["ReadTokenKey"]["Resource"], key)
        env = self.resources["Registry"]["Properties"]["Environment"]["Variables"]
        self.assertEqual(env["BERTH_TOKEN_KEY_SECRET"], key)
        policy = self.resources["TokenKeyPolicy"]["Properties"]
        self.assertTrue(policy["BlockPublicPolicy"])
        role_arn = GETATTS[("RegistryRole", "Arn")]
        doc = policy["ResourcePolicy"]
        for principal_arn, result in ((role_arn, "NoMatch"),
                                      (f"arn:aws:iam::{ACCOUNT}:role/admin", "Deny"),
                                      (f"arn:aws:iam::{ACCOUNT}:user/alice", "Deny")):
            with self.subTest(principal=principal_arn):
                self.assertEqual(
                    tsp.evaluate(doc, {"AWS": principal_arn}, "secretsmanager:GetSecretValue",
                                 key, {"aws:PrincipalArn": principal_arn}), result)
        # Other callers are not denied everything: operators can still rotate it.
        self.assertEqual(
            tsp.evaluate(doc, {"AWS": "x"}, "secretsmanager:PutSecretValue", key,
                         {"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:role/admin"}), "NoMatch")

    def test_secrets_manager_or_ssm_token_key(self):
        for arn in (f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:berth/token-key-AbCdEf",
                    f"arn:aws:ssm:eu-west-1:{ACCOUNT}:parameter/berth/token-key"):
            with self.subTest(arn=arn):
                pattern = self.template["Parameters"]["TokenKeySecretArn"]["AllowedPattern"]
                self.assertRegex(arn, pattern)
                resources = Resolver(self.template, TokenKeySecretArn=arn,
                                     TokenKeyKmsKeyArn=f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/k").resources()
                # Secrets Manager secrets get the resource policy; SSM parameters have none.
                self.assertEqual("TokenKeyPolicy" in resources, ":secretsmanager:" in arn)
                statements = by_sid(self.registry_statements(resources))
                self.assertEqual(statements["ReadTokenKey"]["Resource"], arn)
                self.assertEqual(statements["DecryptTokenKey"]["Resource"],
                                 f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/k")
                env = resources["Registry"]["Properties"]["Environment"]["Variables"]
                self.assertEqual(env["BERTH_TOKEN_KEY_SECRET"], arn)
        self.assertNotIn("DecryptTokenKey", by_sid(self.registry_statements()))

    def test_github_role(self):
        role = self.resources["GitHubPublisherRole"]["Properties"]
        self.assertEqual(role["ManagedPolicyArns"], [RESOURCE_REFS["PublisherPolicy"]])
        (trust,) = statements_of(role["AssumeRolePolicyDocument"])
        self.assertEqual(trust["Action"], "sts:AssumeRoleWithWebIdentity")
        self.assertEqual(trust["Principal"]["Federated"], RESOURCE_REFS["GitHubOidcProvider"])
        self.assertEqual(trust["Condition"]["StringEquals"],
                         {"token.actions.githubusercontent.com:aud": "sts.amazonaws.com"})
        self.assertEqual(trust["Condition"]["StringLike"],
                         {"token.actions.githubusercontent.com:sub": "repo:acme/web:ref:refs/heads/main"})
        self.assertIn("GitHubOidcProvider", self.resources)
        existing = f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com"
        resources = Resolver(self.template, GitHubRepo="acme/web",
                             GitHubOidcProviderArn=existing).resources()
        self.assertNotIn("GitHubOidcProvider", resources)
        self.assertNotIn("GitHubPublisherRole", Resolver(self.template).resources())


class FunctionAndBucketTest(unittest.TestCase):
    def setUp(self):
        self.template = load_template()
        self.resources = Resolver(self.template).resources()

    def test_function(self):
        fn = self.resources["Registry"]["Properties"]
        self.assertEqual(fn["Runtime"], "provided.al2023")
        self.assertEqual(fn["Handler"], "bootstrap")
        self.assertEqual(fn["CodeUri"], "../target/lambda/berth-registry/bootstrap.zip")
        with open(os.path.join(ROOT, "scripts", "build-lambda")) as f:
            self.assertIn("target/lambda/berth-registry/bootstrap.zip", f.read())
        self.assertEqual(fn["Architectures"], ["x86_64"])
        self.assertEqual(self.template["Parameters"]["Architecture"]["AllowedValues"],
                         ["x86_64", "arm64"])
        self.assertEqual(fn["FunctionUrlConfig"]["AuthType"], "NONE")
        env = fn["Environment"]["Variables"]
        self.assertEqual(env["BERTH_STORE"], f"s3://{BUCKET}")
        self.assertEqual(set(env), {"BERTH_STORE", "BERTH_PRESIGN_EXPIRY_SECS",
                                    "BERTH_STORE_TIMEOUT_SECS", "BERTH_LOG",
                                    "BERTH_TOKEN_KEY_SECRET", "BERTH_TOKEN_TTL_SECS"})
        self.assertEqual(env["BERTH_TOKEN_KEY_SECRET"], TOKEN_KEY)
        self.assertGreater(fn["Timeout"], int(env["BERTH_STORE_TIMEOUT_SECS"]))
        resources = Resolver(self.template, PublicS3Endpoint="https://s3.example.com").resources()
        env = resources["Registry"]["Properties"]["Environment"]["Variables"]
        self.assertEqual(env["BERTH_PUBLIC_S3_ENDPOINT"], "https://s3.example.com")

    def test_bucket(self):
        bucket = self.template["Resources"]["Bucket"]
        self.assertEqual(bucket["DeletionPolicy"], "Retain")
        props = self.resources["Bucket"]["Properties"]
        self.assertNotIn("BucketName", props)  # CloudFormation picks one by default
        self.assertTrue(all(props["PublicAccessBlockConfiguration"].values()))
        self.assertEqual(len(props["PublicAccessBlockConfiguration"]), 4)
        (sse,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        self.assertEqual(sse["ServerSideEncryptionByDefault"]["SSEAlgorithm"], "AES256")
        rules = {r["Id"]: r for r in props["LifecycleConfiguration"]["Rules"]}
        self.assertEqual(rules["AbortIncompleteMultipartUploads"]["Status"], "Enabled")
        self.assertIn("AbortIncompleteMultipartUpload", rules["AbortIncompleteMultipartUploads"])
        named = Resolver(self.template, BucketName="my-registry").resources()
        self.assertEqual(named["Bucket"]["Properties"]["BucketName"], "my-registry")

    def test_custom_domain(self):
        self.assertNotIn("RegistryDistribution", self.resources)
        resources = Resolver(
            self.template, DomainName="registry.example.com",
            CertificateArn=f"arn:aws:acm:us-east-1:{ACCOUNT}:certificate/c").resources()
        config = resources["RegistryDistribution"]["Properties"]["DistributionConfig"]
        self.assertEqual(config["Aliases"], ["registry.example.com"])
        (origin,) = config["Origins"]
        self.assertEqual(origin["DomainName"], "abcdefgh.lambda-url.eu-west-1.on.aws")
        policy = resources["RegistryCachePolicy"]["Properties"]["CachePolicyConfig"]
        headers = policy["ParametersInCacheKeyAndForwardedToOrigin"]["HeadersConfig"]["Headers"]
        self.assertIn("Authorization", headers)
        self.assertIn("Accept", headers)
        self.assertFalse(config["DefaultCacheBehavior"]["Compress"])
        env = resources["Registry"]["Properties"]["Environment"]["Variables"]
        self.assertEqual(env["BERTH_PUBLIC_URL"], "https://registry.example.com")



class VariantTest(unittest.TestCase):
    """infra/check scans the all-options variant so that checkov sees every resource."""

    def test_all_options_creates_every_resource(self):
        import template_variants

        with open(TEMPLATE) as f:
            text = template_variants.all_options(f.read())
        template = yaml.load(text, Loader=CfnLoader)
        created = set(Resolver(template).resources())
        missing = set(template["Resources"]) - created
        self.assertEqual(missing, {"TooManyPublicRepositoriesHandle",
                                   "TooManyPublicRepositoriesAtMost20AreSupported"})


if __name__ == "__main__":
    unittest.main()
