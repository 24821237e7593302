package testutil

import (
	"net"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
)

// ReloadNATS applies opts to the running server s, as a config reload does
// (new users, passwords or tokens: clients the new options no longer
// accept are disconnected, and their reconnects refused). opts is cloned and
// its port set to the one s listens on, so the options a test started s
// with (port -1) can be changed and passed again.
func ReloadNATS(t testing.TB, s *server.Server, opts *server.Options) {
	t.Helper()
	o := opts.Clone()
	o.Port = s.Addr().(*net.TCPAddr).Port
	if err := s.ReloadOptions(o); err != nil {
		t.Fatalf("nats server reload: %v", err)
	}
}
