"""Key-ownership registry: who owns each key, where it lives, who consumes it, when it must rotate."""
