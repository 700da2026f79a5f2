package identity

// CredentialFields names, per event type, the JSON fields of the event's
// data that hold credential material: password hashes (bcrypt, argon2id and
// Graphene's legacy salt and hash), API key secret hashes and refresh token
// ids. The service needs them to rebuild users from the log, but no reader
// of the log may see them, auditors included: the service stores them
// sealed and hides them where events written before sealing hold them in
// the clear. Every event type that carries a credential must be listed.
func CredentialFields() map[string][]string {
	return map[string][]string{
		TypeUserRegistered:  {"password_hash"},
		TypePasswordChanged: {"password_hash"},
		TypeAPIKeyIssued:    {"hash"},
		TypeRefreshIssued:   {"token_id"},
		TypeRefreshRotated:  {"old_token_id", "new_token_id"},
	}
}
