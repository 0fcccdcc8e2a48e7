"""Commands from the broker (docs/commands.md): validated, signed, never replayed.

Wire format (JSON object on `P/S/D/cmd/<name>`):
    id          UUID, unique per command; a second arrival is refused as a replay
    issued_at   RFC 3339; refused when older than 5 minutes or more than 1 minute ahead
    expires_at  optional RFC 3339; refused once passed
    signature   base64 Ed25519 by any key in `appliance.command_key_file` (old and new during a
                rotation); required unless `appliance.allow_unsigned_commands` (a lab bench)
plus the command's own fields: `maintenance` takes `{"on": true|false}`; `directory` takes
`{"version": N, "badges": [{"badge_ref", "staff_id", "name", "role", "revoked"}]}` (badge refs,
never UIDs); `force_logoff` and `activity` take nothing more (optional `reason`, `by`).

The signature covers `handoff-cmd-v1`, the device id and the command name, each followed by
a newline, then the payload without `signature` in RFC 8785 (JCS) canonical JSON. So a
command signed for one cart cannot be replayed to another, nor as another command.
"""
