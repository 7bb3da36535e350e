"""Where keys are revoked and minted (OpenAI, manual vendors) and where replacements are kept (Vault)."""
