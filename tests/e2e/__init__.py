"""End-to-end tests: real HTTP against the local stack of infra/template.yaml."""
