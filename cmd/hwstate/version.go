package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/nats-io/nats-server/v2/server"
)

// version and commit are set by the build: -ldflags "-X main.version=v1.2.3 -X
// main.commit=<sha>". The image is built without .git (the Dockerfile passes COMMIT), so Go
// cannot stamp vcs.revision there and commit is all the binary knows of its source.
var (
	version = "dev"
	commit  string
)

func runVersion(_ context.Context, _ []string, stdout, _ io.Writer) error {
	info, _ := debug.ReadBuildInfo()
	fmt.Fprintf(stdout, "hwstate %s\ncommit %s\n%s\nnats-server %s\n", version, revision(info, commit), runtime.Version(), server.VERSION)
	return nil
}

// revision is the commit the binary was built from: Go's vcs.revision stamp (with
// " (modified)" for a dirty tree), else the one the build passed in, else "unknown".
func revision(info *debug.BuildInfo, stamped string) string {
	rev, modified := "", ""
	if info != nil {
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					modified = " (modified)"
				}
			}
		}
	}
	switch {
	case rev != "":
		return rev + modified
	case stamped != "":
		return stamped
	}
	return "unknown"
}
