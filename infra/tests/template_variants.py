"""Template variants for the scanners (standard library only).

checkov resolves conditions from parameter defaults and skips resources whose
condition is false, so scanning infra/template.yaml as it is covers only the default
deployment. `all_options` rewrites the defaults so that every optional part (custom
domain, static route, GitHub role) is created, and infra/check
scans that too. StaticDomainName stays empty: the static route on its cloudfront.net
name is the variant that needs a written exception (CKV_AWS_174).

    python3 infra/tests/template_variants.py infra/template.yaml > all-options.yaml
"""

import re
import sys

ALL_OPTIONS = {
    "TokenKeySecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:berth/token-key-AbCdEf",
    "StaticSite": '"true"',
    "PublicRepositories": "acme/web,library/alpine",
    "DomainName": "registry.example.com",
    "CertificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000",
    "GitHubRepo": "acme/web",
}


def all_options(text):
    for name, value in ALL_OPTIONS.items():
        # Replace the default, or give a required parameter one.
        pattern = re.compile(r"(\n  %s:\n    Type: [A-Za-z]+\n)(    Default: [^\n]*\n)?" % re.escape(name))
        text, n = pattern.subn(lambda m: m.group(1) + f"    Default: {value}\n", text)
        if n != 1:
            raise SystemExit(f"template_variants: no parameter {name}")
    return text


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        sys.stdout.write(all_options(f.read()))
