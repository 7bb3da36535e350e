# keybot: the least-privilege Vault / OpenBao policy.
#
#   bao policy write keybot runbooks/vault-policy.hcl        (or: vault policy write ...)
#   bao token create -policy=keybot -no-default-policy       (VAULT_TOKEN), or an AppRole whose
#   token_policies = ["keybot"]                              (VAULT_ROLE_ID / VAULT_SECRET_ID)
#
# keybot writes each replacement API key as a new KV v2 version (check-and-set) under the `secret/`
# mount, keeps per-version state in the secret's custom metadata, and destroys the leaked version only
# after the old key's revocation is verified. It never lists secrets, reads policies, touches other
# mounts, or deletes a secret's whole history. To confine it to part of the mount, replace `*` below
# with a sub-path (e.g. `secret/data/keys/*`) in all four KV v2 stanzas.

# New versions: "create" for a secret's first version, "update" for later ones (always with cas).
# "read": `read()` verifies a replacement, and after a crash between the data write and the metadata
# write keybot reads that version's keybot_run label to recognise its own write.
path "secret/data/*" {
  capabilities = ["create", "update", "read"]
}

# Version list and custom metadata (state, run id, key id per version). keybot writes the data first,
# so the metadata always exists and "update" suffices. No "delete": on this path it would erase every
# version and the metadata, i.e. the record of the rotation.
path "secret/metadata/*" {
  capabilities = ["read", "update"]
}

# Soft delete of one version (recoverable with undelete, which is left to humans).
path "secret/delete/*" {
  capabilities = ["update"]
}

# Permanent destruction of the leaked version's data; its metadata stays.
path "secret/destroy/*" {
  capabilities = ["update"]
}

# Dynamic secrets: revoke every lease a leaked role issued. revoke-prefix requires "sudo". This is the
# configurable part: list the prefixes keybot may revoke, one stanza each, as narrow as possible (a
# prefix of `database/creds/` alone revokes every database credential of every application).
path "sys/leases/revoke-prefix/database/creds/*" {
  capabilities = ["update", "sudo"]
}

# health(): does the token still work? Also in the `default` policy; granted here so that a token made
# with -no-default-policy keeps working.
path "auth/token/lookup-self" {
  capabilities = ["read"]
}

# `keybot doctor` asks which of the above this token holds. Also in the `default` policy; granted here so
# that a token made with -no-default-policy can be checked. It reveals only this token's own capabilities.
path "sys/capabilities-self" {
  capabilities = ["update"]
}
