"""The `clock` process: periodic jobs (stale-run recovery, notification delivery) under a leader lock."""
