package main

import "runtime/debug"

// version is set at build time with -ldflags "-X main.version=..." (the
// Dockerfile passes its VERSION argument); a binary built without it in a
// git checkout reports the commit it was built from (see init).
var version = "dev"

func init() {
	if version == "dev" {
		if info, ok := debug.ReadBuildInfo(); ok {
			version = vcsVersion(info.Settings)
		}
	}
}

// vcsVersion is "dev-" and the first 12 digits of the commit that go build
// stamped into settings, with "-dirty" for uncommitted changes; "dev" when
// none was stamped.
func vcsVersion(settings []debug.BuildSetting) string {
	var rev, dirty string
	for _, s := range settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if rev == "" {
		return "dev"
	}
	return "dev-" + rev[:min(12, len(rev))] + dirty
}
