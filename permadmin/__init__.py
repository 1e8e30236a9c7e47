"""What an administrator may change, below GraphQL: each operation is one
transaction under the delegation rule (permcore/delegation.py), with its audit
rows, returning once the change has reached this instance's cache.

Callable without a GraphQL request: an operation takes an `Actor` (who acts, on
which database, how a commit is settled) and plain values, returns rows, and
raises a `Refused` for every expected refusal (schema/mutations/ turns them into
result types)."""
