"""Deploy contract: what a deploy relies on that cfn-lint and cdk-nag cannot see, checked on every
example BU's synthesized templates (the session's ``synthesized`` fixture, shared with
tests/stacks through the ``harness.synthesized_app`` plugin). Each test's docstring names the
fact and its source."""
