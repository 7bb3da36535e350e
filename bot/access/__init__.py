"""Who may do what to a key, a run or an incident: one Slack-free policy every service function calls."""
