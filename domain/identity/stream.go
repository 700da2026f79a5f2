package identity

// StreamPrefix starts the name of every user stream: "user-<name>".
const StreamPrefix = "user-"

// Stream returns the name of the stream of user name.
func Stream(name string) string { return StreamPrefix + name }
