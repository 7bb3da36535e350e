"""The `keybot` command line: operators' tools and the break-glass path when Slack is down."""
