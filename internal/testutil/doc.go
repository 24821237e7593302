// Package testutil holds helpers used only by tests: an embedded NATS server
// on a random loopback port with JetStream in a temporary directory (also
// behind TLS with an nkey user, as environments other than dev require, and
// its options changed at run time as a config reload does: ReloadNATS), a
// throw-away CA with server certificates in files (NewPKI), polling
// assertions, metric reads that fail on a metric that does not exist, and
// the shared build of WebAssembly test modules.
//
// # Example
//
//	func TestX(t *testing.T) {
//		s := testutil.RunNATS(t)
//		nc := testutil.Connect(t, s)
//		testutil.Eventually(t, 5*time.Second, 10*time.Millisecond, func() error { ... })
//	}
package testutil
